#include "cli/admin/receipts_report.hpp"

#include <ostream>

#include "cli/json_writer.hpp"
#include "conf/units.hpp"

namespace postern::admin {

namespace {

std::string when(std::int64_t t) { return t ? conf::utc_minute(t) : std::string(); }

std::string csv_field(const std::string& v) {
  if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
  std::string out = "\"";
  for (char c : v) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

void print_receipts_table(const std::vector<message_report>& messages,
                          const std::vector<receipt>& unmatched, std::ostream& out) {
  for (const auto& m : messages) {
    out << when(m.sent.time) << "  " << m.sent.mailbox << "  " << m.sent.message_id << "  "
        << to_string(m.status);
    if (m.accepted_at) out << "  accepted " << when(*m.accepted_at);
    out << "\n";
    if (!m.why.empty()) out << "    " << m.why << "\n";
    for (const auto& r : m.recipients) {
      out << "    " << r.address << ": " << to_string(r.state);
      if (r.time) out << " " << when(r.time);
      if (!r.reason.empty()) out << " (" << r.reason << ")";
      out << "\n";
    }
  }
  if (unmatched.empty()) return;
  out << "receipts matching no submitted message:\n";
  for (const auto& r : unmatched)
    out << "  " << when(r.time) << "  " << fetch::to_string(r.kind) << "  " << r.ref_message_id
        << (r.recipient.empty() ? "" : "  " + r.recipient)
        << (r.mailbox.empty() ? "" : "  (in " + r.mailbox + ")") << "\n";
}

void print_receipts_json(const std::vector<message_report>& messages,
                         const std::vector<receipt>& unmatched, std::ostream& out) {
  cli::json_writer json;
  json.begin_object().begin_array("messages");
  for (const auto& m : messages) {
    json.begin_object().string("message_id", m.sent.message_id).string("mailbox", m.sent.mailbox);
    json.string("submitted", when(m.sent.time)).string("submission", m.sent.outcome);
    json.string("reply", m.sent.reply).boolean("uncertain", m.sent.uncertain);
    json.string("accepted", m.accepted_at ? when(*m.accepted_at) : "");
    json.string("provider_id", m.provider_id).string("not_accepted", m.not_accepted);
    json.string("status", to_string(m.status)).string("why", m.why).begin_array("recipients");
    for (const auto& r : m.recipients)
      json.begin_object()
          .string("address", r.address)
          .string("state", to_string(r.state))
          .string("time", when(r.time))
          .string("reason", r.reason)
          .end_object();
    json.end_array().end_object();
  }
  json.end_array().begin_array("unmatched");
  for (const auto& r : unmatched)
    json.begin_object()
        .string("ref_message_id", r.ref_message_id)
        .string("kind", fetch::to_string(r.kind))
        .string("recipient", r.recipient)
        .string("time", when(r.time))
        .string("mailbox", r.mailbox)
        .end_object();
  json.end_array().end_object();
  out << json.text() << "\n";
}

void print_receipts_csv(const std::vector<message_report>& messages, std::ostream& out) {
  out << "submitted,mailbox,message_id,status,accepted,recipient,state,time,reason\r\n";
  for (const auto& m : messages)
    for (const auto& r : m.recipients)
      out << csv_field(when(m.sent.time)) << "," << csv_field(m.sent.mailbox) << ","
          << csv_field(m.sent.message_id) << "," << to_string(m.status) << ","
          << csv_field(m.accepted_at ? when(*m.accepted_at) : "") << "," << csv_field(r.address)
          << "," << to_string(r.state) << "," << csv_field(when(r.time)) << ","
          << csv_field(r.reason.empty() ? m.why : r.reason) << "\r\n";
}

}  // namespace postern::admin
