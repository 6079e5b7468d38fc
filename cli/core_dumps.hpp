#pragma once
/// Keeps secrets out of core dumps: every postern program holds passwords in memory at some
/// point, and a core file (or a debugger attached by another user) would expose them.

namespace postern::cli {

/// RLIMIT_CORE 0 and PR_SET_DUMPABLE 0: no core file is written, and other processes of
/// the same user cannot read this one's memory. Called first thing in every main().
void forbid_core_dumps();

}  // namespace postern::cli
