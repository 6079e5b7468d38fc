#pragma once
/// How `postern receipts` prints what the index says: a table (default), JSON or CSV.

#include <iosfwd>
#include <vector>

#include "cli/admin/receipt_status.hpp"

namespace postern::admin {

/// One line per message (its recipients' states after it), then the receipts that match no
/// submitted message.
void print_receipts_table(const std::vector<message_report>& messages,
                          const std::vector<receipt>& unmatched, std::ostream& out);
/// {"messages": [...], "unmatched": [...]}.
void print_receipts_json(const std::vector<message_report>& messages,
                         const std::vector<receipt>& unmatched, std::ostream& out);
/// A header row, then one row per recipient of each message (RFC 4180 quoting).
void print_receipts_csv(const std::vector<message_report>& messages, std::ostream& out);

}  // namespace postern::admin
