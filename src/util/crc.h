/* CRC-32C (Castagnoli), the checksum of log records and file blocks. */
#ifndef TL_CRC_H
#define TL_CRC_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: pass 0 to start. */
uint32_t tl_crc32c(uint32_t crc, const void *p, size_t len);

#endif
