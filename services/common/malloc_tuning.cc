#include "traceslo/common/malloc_tuning.h"

#include <cstdlib>  // defines __GLIBC__ on glibc

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace traceslo {

void KeepFreedMemoryForReuse() {
#if defined(__GLIBC__)
  // Setting either turns off glibc's own adjustment of both, so both are set.
  constexpr int kMmapThreshold = 32 << 20;  // glibc's largest allowed value on 64-bit
  constexpr int kTrimThreshold = 256 << 20;
  mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
#endif
}

}  // namespace traceslo
