"""A FUSE passthrough that forgets what was not synced when the power goes (issue 14 item 1).

    python powercut_fs.py BACKING MOUNTPOINT --seed N --report FILE.json [--writeback-s S]

Runs in the foreground. Every file under MOUNTPOINT is the file of the same name under
BACKING, which plays the disk: it holds only what was made durable. What a program writes
(write, truncate, fallocate) is kept in memory as a list of pending operations per file and
shown to readers on top of the disk's bytes, as the page cache would. fsync or fdatasync of
a file applies all of that file's pending operations to BACKING. A writeback thread applies
operations older than --writeback-s seconds, in order, as the kernel's flusher would
(dirty_expire_centisecs; default 30 s).

Unmounting the file system is the power cut: once the kernel lets go of the mount, each
file keeps a random part of its pending operations (none, all, an in-order prefix, or a
random subset; writes between two size changes in random order; one kept write possibly
torn at a random byte) and loses the rest. What was kept and dropped is printed and written
to the JSON report. A new daemon on the same BACKING then starts from what survived.

With --fail-file FILE, I/O errors on demand: while FILE exists, each of its lines
"<write|fsync> <substring>" makes that call fail with EIO for every path holding the
substring (written nowhere: a failed write or fsync leaves the file as it was).

Modelled and not: see docs/RELIABILITY.md ("Power cuts"). In short, namespace operations
(create, mkdir, rename, unlink) go to BACKING at once, as if every directory were synced
right away: a missing directory fsync is not caught. A rename moves only the synced bytes
of a file with pending writes, which is the ext4 replace-by-rename hazard.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import random
import sys
import threading
import time
from dataclasses import dataclass, field

import mfusepy as fuse

FALLOC_FL_KEEP_SIZE = 0x01


@dataclass
class Op:
    """One pending change to a file: a write of `data` at `offset`, a truncate to
    `offset` (kind "size"), or an fallocate of [offset, offset+length) that grows the
    file (kind "alloc")."""
    kind: str
    offset: int
    data: bytes = b""
    length: int = 0
    at: float = field(default_factory=time.monotonic)

    @property
    def nbytes(self) -> int:
        return len(self.data)


class FileState:
    """The pending operations of one file (by inode), with a descriptor of its backing
    file of its own, so they can be applied after a rename or close."""

    def __init__(self, fd: int, name: str):
        self.fd = fd
        self.name = name           # a path when last seen, for the report only
        self.ops: list[Op] = []
        self.size = os.fstat(fd).st_size   # what readers see

    def add(self, op: Op) -> None:
        self.ops.append(op)
        if op.kind == "write":
            self.size = max(self.size, op.offset + len(op.data))
        elif op.kind == "size":
            self.size = op.offset
        elif op.kind == "alloc":
            self.size = max(self.size, op.offset + op.length)

    def read(self, offset: int, size: int) -> bytes:
        """The bytes a reader sees: the disk's, with the pending operations on top."""
        end = min(offset + size, self.size)
        if end <= offset:
            return b""
        buf = bytearray(os.pread(self.fd, end - offset, offset))
        buf.extend(bytes(end - offset - len(buf)))
        for op in self.ops:
            if op.kind == "write":
                lo, hi = max(offset, op.offset), min(end, op.offset + len(op.data))
                if lo < hi:
                    buf[lo - offset:hi - offset] = op.data[lo - op.offset:hi - op.offset]
            elif op.kind == "size" and op.offset < end:
                # A later extension reads zeros where the truncate cut.
                lo = max(op.offset, offset)
                buf[lo - offset:] = bytes(end - lo)
        return bytes(buf)

    def apply(self, ops: list[Op]) -> None:
        """Writes `ops` to the disk, in the order given."""
        for op in ops:
            if op.kind == "write":
                os.pwrite(self.fd, op.data, op.offset)
            elif op.kind == "size":
                os.ftruncate(self.fd, op.offset)
            elif op.kind == "alloc":
                os.posix_fallocate(self.fd, op.offset, op.length)

    def write_back(self, older_than: float) -> int:
        """Applies the oldest operations (an in-order prefix) queued before `older_than`."""
        n = 0
        while n < len(self.ops) and self.ops[n].at < older_than:
            n += 1
        self.apply(self.ops[:n])
        del self.ops[:n]
        return n


# --- the power cut ---------------------------------------------------------------------


def epochs(ops: list[Op]) -> list[list[Op]]:
    """Splits ops at size changes: a write never lands after a truncate or fallocate
    that came after it (the truncate drops it from the page cache), but writes between
    two size changes may reach the disk in any order."""
    out: list[list[Op]] = [[]]
    for op in ops:
        if op.kind == "write":
            out[-1].append(op)
        else:
            out.append([op])
            out.append([])
    return [e for e in out if e]


def tear(op: Op, rng: random.Random) -> tuple[Op, str]:
    """A write that reached the disk in part: its first or its last bytes, cut at a
    random byte."""
    cut = rng.randrange(1, len(op.data))
    if rng.random() < 0.5:
        return Op("write", op.offset, op.data[:cut]), f"first {cut} of {len(op.data)} bytes"
    return Op("write", op.offset + cut, op.data[cut:]), f"last {len(op.data) - cut} of {len(op.data)} bytes"


def choose_survivors(ops: list[Op], rng: random.Random) -> tuple[list[Op], str, str | None]:
    """What of one file's pending ops reaches the disk before the power goes: returns
    (ops to apply in that order, how they were chosen, how a write was torn or None)."""
    how = rng.choice(["none", "all", "prefix", "subset"])
    if how == "none":
        return [], how, None
    if how == "all":
        kept = list(ops)
    elif how == "prefix":
        kept = ops[:rng.randrange(0, len(ops) + 1)]
    else:
        p = rng.random()
        kept = []
        for group in epochs(ops):
            group = [op for op in group if rng.random() < p]
            rng.shuffle(group)
            kept += group
    torn = None
    writes = [i for i, op in enumerate(kept) if op.kind == "write" and len(op.data) > 1]
    if writes and how != "all" and rng.random() < 0.7:
        # In a prefix the torn write is the last one: the one in flight when the power went.
        i = writes[-1] if how == "prefix" else rng.choice(writes)
        kept[i], torn = tear(kept[i], rng)
    return kept, how, torn


def power_cut(states: dict[int, FileState], rng: random.Random) -> dict:
    """Applies to the disk what survives of every file's pending ops; returns the report."""
    files = []
    for st in sorted(states.values(), key=lambda s: s.name):
        if not st.ops:
            continue
        kept, how, torn = choose_survivors(st.ops, rng)
        st.apply(kept)
        pending = sum(op.nbytes for op in st.ops)
        kept_bytes = sum(op.nbytes for op in kept)
        files.append({
            "file": st.name, "how": how, "ops": len(st.ops), "kept_ops": len(kept),
            "pending_bytes": pending, "dropped_bytes": pending - kept_bytes, "torn": torn,
            "size_ops": sum(op.kind != "write" for op in st.ops),
        })
        st.ops.clear()
    return {
        "files": files,
        "pending_bytes": sum(f["pending_bytes"] for f in files),
        "dropped_bytes": sum(f["dropped_bytes"] for f in files),
        "torn_writes": sum(f["torn"] is not None for f in files),
    }


# --- the file system -------------------------------------------------------------------


class PowerCutFs(fuse.Operations):
    """Passthrough to `backing`, with writes held in memory until synced (see the module
    docstring). One lock serialises every call: the daemon is a test fixture, not a
    fast file system."""

    use_ns = True

    def __init__(self, backing: str, writeback_s: float, fsync_delay_s: float = 0.0,
                 fail_file: str | None = None):
        self.fail_file = fail_file
        self._fail_rules: tuple[float, list[tuple[str, str]]] = (-1.0, [])
        self.backing = backing
        self.writeback_s = writeback_s
        self.fsync_delay_s = fsync_delay_s
        self.mutex = threading.Lock()
        self.states: dict[int, FileState] = {}    # by inode of the backing file
        self.handles: dict[int, tuple[int, int]] = {}   # fh: (backing fd, inode)
        self.next_fh = 1
        self.synced_ops = 0
        self.injected_errors = 0
        self.written_back_ops = 0
        self.stopped = threading.Event()

    def _path(self, path: str) -> str:
        return os.path.join(self.backing, path.lstrip("/"))

    def _state(self, path: str, fh: int | None = None) -> FileState:
        """The pending state of the file at `path` (or open as `fh`), made on its first
        pending op."""
        if fh is not None:
            fd, ino = self.handles[fh]
        else:
            ino = os.stat(self._path(path)).st_ino
        st = self.states.get(ino)
        if st is None:
            fd = os.dup(fd) if fh is not None else os.open(self._path(path), os.O_RDWR)
            st = self.states[ino] = FileState(fd, path)
        st.name = path
        return st

    def _forget(self, ino: int) -> None:
        st = self.states.pop(ino, None)
        if st is not None:
            os.close(st.fd)

    # attributes and directories

    def getattr(self, path, fh=None):
        with self.mutex:
            s = os.lstat(self._path(path))
            attrs = {k: getattr(s, k) for k in (
                "st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks",
                "st_atime_ns", "st_mtime_ns", "st_ctime_ns")}
            for k in ("atime", "mtime", "ctime"):
                attrs[f"st_{k}"] = attrs.pop(f"st_{k}_ns")
            st = self.states.get(s.st_ino)
            if st is not None:
                attrs["st_size"] = st.size
            return attrs

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._path(path))

    def mkdir(self, path, mode):
        os.mkdir(self._path(path), mode)

    def rmdir(self, path):
        os.rmdir(self._path(path))

    def statfs(self, path):
        v = os.statvfs(self._path(path))
        return {k: getattr(v, k) for k in (
            "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
            "f_ffree", "f_favail", "f_flag", "f_namemax")}

    def chmod(self, path, mode):
        os.chmod(self._path(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._path(path), uid, gid)

    def utimens(self, path, times=None):
        os.utime(self._path(path), ns=times)

    def access(self, path, amode):
        if not os.access(self._path(path), amode):
            raise fuse.FuseOSError(errno.EACCES)
        return 0

    def fsyncdir(self, path, datasync, fh):
        return 0   # namespace operations are on the disk already

    # namespace

    def _links_dropping(self, real: str) -> int | None:
        """The inode at `real` if removing this name removes the file."""
        try:
            s = os.lstat(real)
        except FileNotFoundError:
            return None
        return s.st_ino if s.st_nlink <= 1 else None

    def unlink(self, path):
        with self.mutex:
            ino = self._links_dropping(self._path(path))
            os.unlink(self._path(path))
            if ino is not None:
                self._forget(ino)

    def rename(self, old, new):
        with self.mutex:
            ino = self._links_dropping(self._path(new))
            os.rename(self._path(old), self._path(new))
            moved = self.states.get(os.lstat(self._path(new)).st_ino)
            if moved is not None:
                moved.name = new
            if ino is not None and ino != os.lstat(self._path(new)).st_ino:
                self._forget(ino)

    # files

    def _open(self, path: str, fd: int) -> int:
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = (fd, os.fstat(fd).st_ino)
        return fh

    def create(self, path, mode, flags=0):
        with self.mutex:
            real = self._path(path)
            fd = os.open(real, (flags & os.O_EXCL) | os.O_CREAT | os.O_RDWR, mode)
            fh = self._open(path, fd)
            if flags & os.O_TRUNC and os.fstat(fd).st_size:
                self._state(path, fh).add(Op("size", 0))
            return fh

    def open(self, path, flags):
        with self.mutex:
            fd = os.open(self._path(path), os.O_RDWR if os.access(self._path(path), os.W_OK) else os.O_RDONLY)
            fh = self._open(path, fd)
            if flags & os.O_TRUNC:
                self._state(path, fh).add(Op("size", 0))
            return fh

    def release(self, path, fh):
        with self.mutex:
            fd, _ = self.handles.pop(fh)
            os.close(fd)
        return 0

    def read(self, path, size, offset, fh):
        with self.mutex:
            fd, ino = self.handles[fh]
            st = self.states.get(ino)
            if st is None:
                return os.pread(fd, size, offset)
            return st.read(offset, size)

    def _fails(self, op: str, path: str) -> bool:
        """Whether the fail file (re-read when it changes) says `op` on `path` fails."""
        if self.fail_file is None:
            return False
        try:
            mtime = os.stat(self.fail_file).st_mtime
        except FileNotFoundError:
            return False
        if mtime != self._fail_rules[0]:
            with open(self.fail_file) as f:
                rules = [tuple(line.split(None, 1)) for line in f if line.strip()]
            self._fail_rules = (mtime, [(r[0], r[1].strip() if len(r) > 1 else "") for r in rules])
        if any(o == op and sub in path for o, sub in self._fail_rules[1]):
            self.injected_errors += 1
            return True
        return False

    def write(self, path, data, offset, fh):
        if self._fails("write", path):
            raise fuse.FuseOSError(errno.EIO)
        with self.mutex:
            self._state(path, fh).add(Op("write", offset, bytes(data)))
            return len(data)

    def truncate(self, path, length, fh=None):
        with self.mutex:
            self._state(path).add(Op("size", length))
        return 0

    def fallocate(self, path, mode, offset, length, fh):
        if mode & ~FALLOC_FL_KEEP_SIZE:
            raise fuse.FuseOSError(errno.EOPNOTSUPP)
        with self.mutex:
            st = self._state(path, fh)
            if mode & FALLOC_FL_KEEP_SIZE:
                return 0   # space only; nothing a reader or a power cut could tell
            st.add(Op("alloc", offset, length=length))
        return 0

    def fsync(self, path, datasync, fh):
        """Applies what was written before the call. With --fsync-delay-ms the disk is
        slow: the call waits up to that long first, and writes that arrive meanwhile
        stay pending (a real fsync may cover them or not; here it does not)."""
        if self._fails("fsync", path):
            raise fuse.FuseOSError(errno.EIO)
        with self.mutex:
            _, ino = self.handles[fh]
            st = self.states.get(ino)
            covered = list(st.ops) if st is not None else []
        if not covered:
            return 0
        if self.fsync_delay_s:
            time.sleep(random.uniform(0, self.fsync_delay_s))
        with self.mutex:
            if self.states.get(ino) is st:
                # The writeback may have applied the oldest meanwhile: what is left of the
                # covered ops is still the front of the list.
                ids = {id(op) for op in covered}
                n = next((i for i, op in enumerate(st.ops) if id(op) not in ids), len(st.ops))
                st.apply(st.ops[:n])
                del st.ops[:n]
                self.synced_ops += n
                if not st.ops:
                    self._forget(ino)
        return 0

    def flush(self, path, fh):
        return 0

    def write_back_loop(self) -> None:
        """The kernel's flusher: every half second, ops older than writeback_s reach the disk."""
        while not self.stopped.wait(0.5):
            with self.mutex:
                older = time.monotonic() - self.writeback_s
                for st in self.states.values():
                    self.written_back_ops += st.write_back(older)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("backing")
    ap.add_argument("mountpoint")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", required=True, help="JSON file for what the power cut kept")
    ap.add_argument("--writeback-s", type=float, default=30.0)
    ap.add_argument("--fsync-delay-ms", type=float, default=0.0,
                    help="each fsync waits a random time up to this first (a slow disk)")
    ap.add_argument("--fail-file", help="lines '<write|fsync> <path substring>': those calls get EIO")
    args = ap.parse_args()
    args.report = os.path.abspath(args.report)   # libfuse leaves the daemon in /
    fs = PowerCutFs(os.path.abspath(args.backing), args.writeback_s,
                    args.fsync_delay_ms / 1000,
                    os.path.abspath(args.fail_file) if args.fail_file else None)
    flusher = threading.Thread(target=fs.write_back_loop, daemon=True)
    flusher.start()
    # No attribute or name caching: every size a program sees comes from here. Each
    # mount is fresh, so the kernel's page cache never holds bytes from before a cut.
    fuse.FUSE(fs, args.mountpoint, foreground=True, fsname="powercut",
              attr_timeout=0, entry_timeout=0, negative_timeout=0)
    fs.stopped.set()
    flusher.join()
    with fs.mutex:
        report = power_cut(fs.states, random.Random(args.seed))
    report.update(synced_ops=fs.synced_ops, written_back_ops=fs.written_back_ops, seed=args.seed,
                  injected_errors=fs.injected_errors)
    with open(args.report, "w") as f:
        json.dump(report, f, indent=1)
    for f in report["files"]:
        print(f"powercut_fs: cut {f['file']}: {f['how']}, kept {f['kept_ops']} of {f['ops']} ops, "
              f"dropped {f['dropped_bytes']} of {f['pending_bytes']} bytes, torn: {f['torn']}",
              file=sys.stderr)
    print(f"powercut_fs: power cut (seed {args.seed}): dropped {report['dropped_bytes']} of "
          f"{report['pending_bytes']} unsynced bytes in {len(report['files'])} files, "
          f"{report['torn_writes']} torn writes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
