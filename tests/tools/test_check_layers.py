"""The layer check (scripts/check_layers.py) holds the line it promises.

Each test copies src/ to a temp dir, plants one violation of the kind ARCHITECTURE.md
marks (checked), runs the checker on the copy and expects it to fail naming the file;
the untouched tree passes.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "scripts" / "check_layers.py"


def run(src: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), "--src", str(src)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def tree(tmp_path):
    dst = tmp_path / "src"
    shutil.copytree(ROOT / "src", dst)
    return dst


def plant(tree: Path, rel: str, code: str) -> None:
    path = tree / rel
    path.write_text(path.read_text() + "\n" + code + "\n")


def test_the_tree_as_it_is_passes(tree):
    r = run(tree)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "layers: ok" in r.stdout


@pytest.mark.parametrize("rel, code, says", [
    ("log/mod.rs", "use crate::protocol::Context;", "`log` uses `protocol`"),
    ("kafka/mod.rs", "pub use crate::runtime::Signal;", "`kafka` uses `runtime`"),
    ("partition/read.rs", "use crate::coordinator::group;", "`partition` uses `coordinator`"),
    ("coordinator/group/mod.rs", "use crate::coordinator::txn::Phase;",
     "`coordinator/group` uses `coordinator/txn`"),
    ("bench/mod.rs", "use crate::log::LogConfig;", "the client `bench/` uses the broker part `log`"),
    ("partition/mod.rs", "static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);",
     "Mutex/RwLock/atomic"),
    ("protocol/fetch.rs", "fn f(m: &std::sync::Mutex<u8>) -> u8 { *m.lock().unwrap() }",
     "Mutex/RwLock/atomic"),
    ("cluster/registry.rs", "fn later() { todo!() }", "todo!"),
    ("protocol/produce.rs",
     "struct Sneak; impl crate::runtime::Message for Sneak { type Service = (); type Reply = (); "
     "const NAME: &'static str = \"x\"; async fn handle(self, _: std::rc::Rc<()>) {} }",
     "a cross-core message declared outside a messages.rs"),
    ("coordinator/group/consumer.rs",
     "crate::message! { Coordinator; Sneak {} -> (), \"x\", |c, m| () }",
     "a cross-core message declared outside a messages.rs"),
])
def test_a_planted_violation_fails_the_check(tree, rel, code, says):
    plant(tree, rel, code)
    r = run(tree)
    assert r.returncode == 1, r.stdout
    assert says in r.stdout, r.stdout
    assert rel.split("/")[-1] in r.stdout or rel in r.stdout, r.stdout


def test_a_file_naming_every_service_outside_the_broker_fails(tree):
    plant(tree, "net/mod.rs", "\n".join([
        "use crate::partition::PartitionManager;",
        "use crate::coordinator::group::Coordinator;",
        "use crate::cluster::Cluster;",
        "use crate::protocol::Context;",
    ]))
    r = run(tree)
    assert r.returncode == 1
    assert "names every service" in r.stdout, r.stdout


def test_a_cycle_across_folders_fails(tree):
    plant(tree, "runtime/clock.rs", "use crate::runtime::mesh::Mesh;")
    plant(tree, "cluster/registry.rs", "use crate::partition::Partition;")
    r = run(tree)
    assert r.returncode == 1
    assert "import cycle across folders" in r.stdout or "not below it" in r.stdout, r.stdout
