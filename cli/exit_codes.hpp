#pragma once
/// Exit codes from sysexits.h, named for what they tell the caller.

namespace postern::exit_code {
inline constexpr int ok = 0;
inline constexpr int usage = 64;        ///< EX_USAGE: bad command line
inline constexpr int data = 65;         ///< EX_DATAERR: bad input data
inline constexpr int unavailable = 69;  ///< EX_UNAVAILABLE: peer refused or unreachable
inline constexpr int software = 70;     ///< EX_SOFTWARE: internal error
inline constexpr int oserr = 71;        ///< EX_OSERR: e.g. cannot bind
inline constexpr int protocol = 76;     ///< EX_PROTOCOL: peer spoke nonsense (TLS/verification)
inline constexpr int tempfail = 75;     ///< EX_TEMPFAIL: try again later (timeouts)
inline constexpr int noperm = 77;       ///< EX_NOPERM: permission denied
inline constexpr int config = 78;       ///< EX_CONFIG: configuration error
}  // namespace postern::exit_code
