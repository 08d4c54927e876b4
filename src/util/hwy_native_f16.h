// kNativeF16 for the Highway target being compiled: Highway's f16 <-> f32 conversions are exact
// only where they map to F16C (x86 AVX2 and better); elsewhere the callers convert bit by bit.
// Included inside namespace HWY_NAMESPACE of a per-target file (foreach_target.h), once per target:
// no include guard on purpose.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2 && !defined(HWY_DISABLE_F16C)
constexpr bool kNativeF16 = true;
#else
constexpr bool kNativeF16 = false;
#endif
