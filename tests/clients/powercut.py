"""The power-cut file system (powercut_fs.py) as a test fixture, and what a test reads
off the disk it leaves behind.

`PowerCutMount(root)` mounts a fresh daemon at root/mnt over root/disk. `cut()` is the
power cut: unmount (the daemon then drops or keeps each file's unsynced writes, see
powercut_fs.py) and return the daemon's report; `start()` mounts a new daemon on what
survived. The broker must be dead before a cut: a file still open keeps the mount busy.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

FS_SCRIPT = Path(__file__).resolve().with_name("powercut_fs.py")
MOUNT_TIMEOUT_S = 15.0


def require_fuse() -> None:
    """Fails (never skips) where this machine cannot mount a FUSE file system: CI runs
    as root with /dev/fuse, so a missing piece is a broken setup, not a reason to pass."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not root (mounting needs root)")
    if not os.path.exists("/dev/fuse"):
        problems.append("/dev/fuse is missing (modprobe fuse, or --device /dev/fuse in a container)")
    try:
        import mfusepy  # noqa: F401  (loads libfuse3)
    except (ImportError, OSError) as err:
        problems.append(f"mfusepy/libfuse3 not importable: {err} (scripts/test.sh installs them)")
    if problems:
        raise AssertionError("the power-cut tests need FUSE: " + "; ".join(problems))


def is_mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == target for line in f)


class PowerCutMount:
    """One mount point over one backing directory, remounted after every cut."""

    def __init__(self, root: Path, *, seed: int, writeback_s: float = 30.0,
                 fsync_delay_ms: float = 0.0, fail_file: Path | None = None):
        self.root = root
        self.disk = root / "disk"
        self.mnt = root / "mnt"
        self.log_path = root / "powercut_fs.log"
        self.seed = seed
        self.writeback_s = writeback_s
        self.fsync_delay_ms = fsync_delay_ms
        self.fail_file = fail_file
        self.cuts = 0
        self.proc: subprocess.Popen | None = None
        self.disk.mkdir(parents=True, exist_ok=True)
        self.mnt.mkdir(parents=True, exist_ok=True)

    def start(self) -> "PowerCutMount":
        """Mounts a fresh daemon; returns once the kernel shows the mount."""
        report = self.root / f"cut-{self.cuts + 1}.json"
        cmd = [sys.executable, str(FS_SCRIPT), str(self.disk), str(self.mnt),
               "--seed", str(self.seed * 100_003 + self.cuts), "--report", str(report),
               "--writeback-s", str(self.writeback_s), "--fsync-delay-ms", str(self.fsync_delay_ms)]
        if self.fail_file is not None:
            cmd += ["--fail-file", str(self.fail_file)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while not is_mounted(self.mnt):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"powercut_fs did not mount {self.mnt}:\n{self.log_tail()}")
            time.sleep(0.02)
        return self

    def cut(self) -> dict:
        """The power cut: unmounts and returns what the daemon kept and dropped."""
        self._unmount()
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"powercut_fs did not exit after the unmount:\n{self.log_tail()}")
        self.proc = None
        assert code == 0, f"powercut_fs exited with {code}:\n{self.log_tail()}"
        self.cuts += 1
        return json.loads((self.root / f"cut-{self.cuts}.json").read_text())

    def _unmount(self, timeout: float = 10.0) -> None:
        """A killed broker's last io_uring requests (run by kernel workers) can hold the
        mount busy for a moment after the process is gone: retry, then detach lazily
        (the daemon still exits, and cuts, once the last reference goes)."""
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(["umount", str(self.mnt)], capture_output=True, text=True)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                print(f"umount {self.mnt}: {done.stderr.strip()}; detaching lazily")
                subprocess.run(["umount", "-l", str(self.mnt)], check=True)
                return
            time.sleep(0.05)

    def stop(self) -> None:
        """Teardown, also after a failure: lazy unmount, then end the daemon."""
        if is_mounted(self.mnt):
            subprocess.run(["umount", "-l", str(self.mnt)], check=False, capture_output=True)
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as err:
            return f"(no powercut_fs log: {err})"


# --- reading the disk a cut left -------------------------------------------------------

BATCH_HEADER = struct.Struct(">qiib")   # baseOffset, batchLength, partitionLeaderEpoch, magic
LOG_OVERHEAD = 12


def unexplained_tail(path: Path) -> tuple[int, int] | None:
    """Walks a segment file's batch headers from the start (lengths and magic only, no
    CRC) to where they stop: a zero header, an implausible one, or the end of the file.
    Returns (position, non-zero bytes at or after it) when bytes that are not zeros lie
    there: recovery must then cut them and say so. None when the tail is clean zeros."""
    data = path.read_bytes()
    pos, expect = 0, None
    while pos + BATCH_HEADER.size <= len(data):
        base, length, _, magic = BATCH_HEADER.unpack_from(data, pos)
        if length < 49 or magic != 2 or pos + LOG_OVERHEAD + length > len(data) \
                or (expect is not None and base != expect):
            break
        # lastOffsetDelta sits 23 bytes into the batch after the length field.
        (delta,) = struct.unpack_from(">i", data, pos + 23)
        expect = base + delta + 1
        pos += LOG_OVERHEAD + length
    rest = data[pos:]
    nonzero = len(rest) - rest.count(0)
    return (pos, nonzero) if nonzero else None


def segments_with_garbage(disk: Path) -> dict[str, tuple[int, int]]:
    """{"<topic-partition dir>/<segment>.log": (position, non-zero bytes)} for every
    segment under `disk` whose tail recovery has to cut."""
    found = {}
    for seg in disk.rglob("*.log"):
        if len(seg.stem) == 20 and seg.stem.isdigit():
            tail = unexplained_tail(seg)
            if tail:
                found[f"{seg.parent.name}/{seg.name}"] = tail
    return found
