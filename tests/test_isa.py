"""Run-time instruction-set dispatch (cpp/src/dispatch.cpp).

The portable module holds one kernel set per instruction set and picks the best this CPU runs,
capped by LSTM_NATIVE_MAX_ISA. Each set is the same source compiled with other flags, so each
must give the reference's results; the kernel tests run again in a fresh interpreter for every
set this machine can run besides the default one (which the rest of the suite covers). The
baseline set and the code all sets share must hold no AVX instruction, or a module built here
would die with SIGILL on a CPU without AVX: the disassembly is checked for that.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import lstm_native
from lstm_native import build_info

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFO = build_info()
LADDER = ["sse2", "avx2", "avx512"]
PORTABLE = INFO["isa_compiled"] == LADDER  # a -march=native build holds one set, "native"
portable_only = pytest.mark.skipif(not PORTABLE, reason="a host-only build has one kernel set")
OTHER_SETS = [s for s in INFO["isa_supported"] if s in LADDER and s != INFO["isa"]]


def run(code: str, isa: str | None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("LSTM_NATIVE_MAX_ISA", None)
    if isa is not None:
        env["LSTM_NATIVE_MAX_ISA"] = isa
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


def test_build_info_reports_the_choice():
    assert INFO["isa"] in INFO["isa_compiled"]
    assert INFO["isa"] in INFO["isa_supported"]
    assert set(INFO["isa_supported"]) <= set(INFO["isa_compiled"])
    if PORTABLE and not os.environ.get("LSTM_NATIVE_MAX_ISA"):
        # uncapped, the best set the CPU runs is chosen
        assert INFO["isa"] == [s for s in LADDER if s in INFO["isa_supported"]][-1]


def _cpuinfo() -> dict:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            block = f.read().split("\n\n")[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in block.splitlines())}


def test_build_info_names_the_cpu():
    """build_info()["cpu"]: the brand string and CPUID's vendor, family, model and stepping,
    the same numbers the kernel decodes into /proc/cpuinfo (x86-64 Linux)."""
    cpu = INFO["cpu"]
    assert isinstance(cpu, str) and cpu
    info = _cpuinfo()
    if "cpu family" not in info or "vendor_id" not in info:
        pytest.skip("no x86 /proc/cpuinfo here")
    ids = (
        f"{info['vendor_id']} family {info['cpu family']} model {info['model']} "
        f"stepping {info['stepping']}"
    )
    assert ids in cpu, (ids, cpu)
    if info.get("model name"):
        assert cpu.startswith(" ".join(info["model name"].split())), (info["model name"], cpu)


@portable_only
@pytest.mark.parametrize("cap", LADDER + ["AVX2"])
def test_cap_chooses_the_best_set_at_or_below_it(cap):
    proc = run("import json, lstm_native; print(json.dumps(lstm_native.build_info()))", cap)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    rank = LADDER.index(cap.lower())
    expected = [s for s in LADDER[: rank + 1] if s in info["isa_supported"]][-1]
    assert info["isa"] == expected
    assert info["max_isa"] == cap


@pytest.mark.parametrize("cap", ["avx9", "native", "sse4"])
def test_unknown_cap_is_a_clear_error_at_import(cap):
    proc = run("import lstm_native", cap)
    assert proc.returncode != 0
    assert "ValueError" in proc.stderr and "LSTM_NATIVE_MAX_ISA" in proc.stderr, proc.stderr
    assert "Segmentation" not in proc.stderr and "Aborted" not in proc.stderr


@portable_only
@pytest.mark.parametrize("isa", OTHER_SETS)
def test_every_kernel_set_matches_the_reference(isa):
    """The kernel, cell-variant and training-trajectory tests under each other set: forward,
    BPTT and the optimizers against tests/reference.py (float32 to 1e-5, float64 to 1e-10)."""
    files = ["tests/test_core.py", "tests/test_variants.py", "tests/test_trajectory.py"]
    code = (
        "import sys, pytest, lstm_native\n"
        f"assert lstm_native.build_info()['isa'] == {isa!r}, lstm_native.build_info()\n"
        f"args = {files!r} + ['-q', '-x', '-p', 'no:randomly', '-p', 'no:cacheprovider']\n"
        "sys.exit(pytest.main(args))\n"
    )
    proc = run(code, isa)
    tail = "\n".join(proc.stdout.splitlines()[-15:])
    assert proc.returncode == 0, f"{proc.stderr[-2000:]}\n{tail}"
    assert re.search(r"\d+ passed", tail) and "failed" not in tail, tail


@functools.lru_cache(maxsize=1)
def _disassembly() -> str:
    """The module's disassembly (demangled), read once for the tests that need it."""
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) is not installed")
    so = lstm_native._core.__file__
    proc = subprocess.run(
        [objdump, "-d", "-C", "--no-show-raw-insn", so], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# AVX (VEX/EVEX) instructions: mnemonics that start with "v" (vmovaps, vfmadd231ps, vpxor, ...)
# or any use of the 256/512-bit registers; verr/verw are the only legacy "v" mnemonics.
_AVX = re.compile(r"^\s*[0-9a-f]+:\s+(v(?!err|erw)[a-z0-9]+\b|.*%[yz]mm\d)")
_FUNC = re.compile(r"^([0-9a-f]+) <(.*)>:$")
_REF = re.compile(r"\b([0-9a-f]+) <([^>]*?)(\+0x[0-9a-f]+)?>")
_OWNED = ("isa_avx2", "isa_avx512", "eigen_avx")


def avx_reachable_from_baseline(disassembly: str) -> list[str]:
    """Functions holding AVX instructions that code outside the AVX sets can reach.

    Functions of the AVX sets (their namespaces, and their renamed Eigen) may use AVX. Others
    may too when only AVX-set code refers to them: a TU-local copy of an inline helper, or a
    compiler clone (.isra, .constprop) inside an AVX set's object. What must not happen is that
    baseline code (the bindings, the dispatcher, the sse2 set) refers to one: an inline function
    shared by the sets whose AVX copy the linker kept for everyone. The roots are the functions
    outside the AVX sets that baseline code refers to, or that nothing refers to directly
    (entry points, vtables); from them every direct call, jump and address taken is followed,
    stopping at the AVX sets' functions (entered through the dispatcher's interface)."""
    funcs: dict[int, dict] = {}
    cur = None
    for line in disassembly.splitlines():
        m = _FUNC.match(line)
        if m:
            cur = int(m.group(1), 16)
            funcs[cur] = {"name": m.group(2), "avx": False, "refs": set()}
            continue
        if cur is None:
            continue
        f = funcs[cur]
        if not f["avx"] and _AVX.match(line):
            f["avx"] = True
        for addr, _name, off in _REF.findall(line.split(":", 1)[-1]):
            f["refs"].add(int(addr, 16) - (int(off, 16) if off else 0))

    def owned(a: int) -> bool:
        return any(k in funcs[a]["name"] for k in _OWNED)

    referrers: dict[int, set] = {a: set() for a in funcs}
    for a, f in funcs.items():
        for r in f["refs"]:
            if r in referrers and r != a:
                referrers[r].add(a)
    roots = [
        a
        for a in funcs
        if not owned(a) and (not referrers[a] or any(not owned(r) for r in referrers[a]))
    ]
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        a = stack.pop()
        if a in seen or a not in funcs or owned(a):
            continue
        seen.add(a)
        stack.extend(funcs[a]["refs"])
    return sorted(funcs[a]["name"] for a in seen if funcs[a]["avx"])


def test_the_reachability_check_finds_a_shared_avx_helper():
    """The check can fail: baseline code calling a helper that holds AVX is reported; the same
    helper called only from an AVX set is not."""
    text = """
0000000000001000 <lstm_native::bind(int)>:
    1000:	call   2000 <lstm_native::require(bool)>
    1005:	ret
0000000000002000 <lstm_native::require(bool)>:
    2000:	vzeroupper
    2003:	ret
0000000000003000 <lstm_native::isa_avx512::Stack<float>::forward()>:
    3000:	vmovups (%rdi),%zmm0
    3006:	call   4000 <std::__rotate<long*>() [clone .isra.0]>
0000000000004000 <std::__rotate<long*>() [clone .isra.0]>:
    4000:	vmovdqu (%r10,%rcx,1),%ymm0
"""
    assert avx_reachable_from_baseline(text) == ["lstm_native::require(bool)"]
    # the same helper called from the avx512 set only: allowed
    only_avx = text.replace("call   2000", "nop   ").replace(
        "    3006:", "    3003:\tcall   2000 <lstm_native::require(bool)>\n    3006:"
    )
    assert avx_reachable_from_baseline(only_avx) == []


@portable_only
@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.uname().machine != "x86_64",
    reason="checks an x86-64 ELF module",
)
def test_baseline_code_reaches_no_avx_instruction():
    """A module built here must run on a CPU without AVX (LSTM_NATIVE_MAX_ISA=sse2 shows the
    sse2 set computes right; this shows nothing outside the AVX sets can execute AVX)."""
    bad = avx_reachable_from_baseline(_disassembly())
    assert not bad, "AVX code reachable outside the AVX kernel sets:\n" + "\n".join(bad[:20])


@portable_only
def test_avx_sets_really_use_avx():
    """The avx512 set's functions hold AVX-512 and FMA instructions (the flags took effect)."""
    text = _disassembly()
    assert re.search(r"isa_avx512::.*\n(?:.*\n)*?.*%zmm\d", text), "no AVX-512 register used"
    assert re.search(r"vfmadd\d+ps", text), "no FMA instruction anywhere"
