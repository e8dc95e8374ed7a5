#pragma once

namespace traceslo {

// Makes glibc's malloc keep freed memory for reuse instead of handing it back to the kernel at
// once: blocks up to 32 MiB come from the heap (not a fresh mmap each), and a heap's free top is
// trimmed only past 256 MiB. librdkafka allocates one buffer per fetch response (~1 MiB per
// partition) and frees it once its records are consumed; with glibc's defaults new buffers are
// faulted in page by page again, which shows as page faults in librdkafka's broker threads
// (docs/benchmarks.md, Kafka section). The price is memory the process keeps after a burst.
// Process-wide: call once at start, before threads are created (traceslo serve does in Kafka
// mode). No-op on other C libraries.
void KeepFreedMemoryForReuse();

}  // namespace traceslo
