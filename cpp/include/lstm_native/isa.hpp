// The instruction set a kernel translation unit is compiled for.
//
// The core's compute code (everything that touches Eigen or SIMD: types.hpp's maps, lanes,
// packed, cells, step, stack, model, stream, loss) is compiled once per kernel set, each time
// with the instruction-set flags of that set (CMakeLists.txt: sse2, avx2 = -mavx2 -mfma,
// avx512 = -mavx512f/bw/vl/dq, or one "native" set with -march=native), and the dispatcher
// (dispatch.cpp) picks one set at import. Two definitions of one inline function compiled
// with different flags must never meet in the link: the linker keeps one copy of each inline
// function or template instance (the first it sees), so a baseline caller could end up in
// AVX-512 code (SIGILL on an older CPU), or the AVX-512 set in baseline code (slow). Hence:
//   * every kernel set's code lives in its own inline namespace, lstm_native::LSTM_NATIVE_ISA_NS
//     (isa_sse2, isa_avx2, ...): inline, so the code itself still says lstm_native::Foo;
//   * Eigen, whose templates the sets instantiate with equal arguments (a GEMM on float is
//     general_matrix_matrix_product<long, float, ...> whatever the SIMD), is renamed per set
//     by the compile definition Eigen=lstm_native_eigen_<set>, so each set has its own Eigen;
//   * what all sets share (common.hpp, cell_facts.hpp, config.hpp, layout.hpp, sizes.hpp,
//     threads.hpp, api.hpp) holds no SIMD code and is defined out of line where it is more
//     than an accessor, in translation units compiled for the baseline only; the baseline
//     objects come first in the link, so any copy the sets still share is the baseline's.
// tests/test_isa.py disassembles the module and checks that no AVX instruction lies outside
// the AVX sets' namespaces.
#pragma once

#ifndef LSTM_NATIVE_ISA_NS
#error "kernel code needs -DLSTM_NATIVE_ISA_NS=isa_<set> (CMakeLists.txt sets it per kernel set)"
#endif
