/* One level's row functions: pool_rows_impl.h for float32 (FC_NF lanes, with indices) and,
 * where FC_ND is defined, float64 (FC_ND lanes). Included by pool_rows.h once per level, with
 * FC_ISA, FC_NF (FC_ND), FC_IN_LANE (or not) and per type what shorter rows call:
 * FC_F32_PADDED and FC_F32_SMALL(name) (FC_F64_PADDED, FC_F64_SMALL), see pool_rows.h; it
 * undefines them all. No include guard. (pool_rows_impl.h undefines its own parameters.) */

#define FC_T float
#define FC_TN f32
#define FC_N FC_NF
#define FC_IT int32_t
#define FC_INDEX 1
#define FC_SMALL_PADDED FC_F32_PADDED
#define FC_SMALL(name) FC_F32_SMALL(name)
#include "pool_rows_impl.h"

#ifdef FC_ND
#define FC_T double
#define FC_TN f64
#define FC_N FC_ND
#define FC_IT int64_t
#define FC_INDEX 0
#define FC_SMALL_PADDED FC_F64_PADDED
#define FC_SMALL(name) FC_F64_SMALL(name)
#include "pool_rows_impl.h"
#endif

#undef FC_ISA
#undef FC_NF
#undef FC_ND
#undef FC_IN_LANE
#undef FC_F32_PADDED
#undef FC_F32_SMALL
#undef FC_F64_PADDED
#undef FC_F64_SMALL
