#pragma once
/// Reading the audit files back: one JSON line is one flat object (the writer is
/// cli::json_line: strings, numbers, booleans, arrays of strings). A line that is not such an
/// object is an error the caller reports with its file and line number, and the rest of the
/// file is still read.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "cli/admin/receipt_status.hpp"

namespace postern::admin {

using audit_value = std::variant<std::string, std::int64_t, bool, std::vector<std::string>>;
using audit_fields = std::map<std::string, audit_value, std::less<>>;

/// Parses one line; nullopt and `error` (where, and what was expected) when it is not a flat
/// JSON object. Escapes, \u sequences and surrogate pairs are decoded to UTF-8.
std::optional<audit_fields> parse_audit_line(std::string_view line, std::string& error);

/// "2026-12-02T15:29:00.123Z" (the audit's time) as unix seconds; nullopt when not that form.
std::optional<std::int64_t> parse_audit_time(std::string_view text);

/// The forwarder's line as a submission; nullopt when it records none (a refusal before any
/// data has no Message-ID), or when a field is missing or of the wrong type (`error` says so).
std::optional<submission> submission_of(const audit_fields& line, std::string& error);

/// The receipt kind fetch's audit names ("accettazione", "avvenuta-consegna", ...); nullopt
/// for what is no receipt ("posta-certificata", "not-pec", ...).
std::optional<fetch::pec_kind> receipt_kind_of(std::string_view name);

/// Fetch's line as a receipt that names a sent message; nullopt when it is none (an ordinary
/// message, an envelope, a receipt without X-Riferimento-Message-ID) or malformed (`error`).
std::optional<receipt> receipt_of(const audit_fields& line, std::string& error);

}  // namespace postern::admin
