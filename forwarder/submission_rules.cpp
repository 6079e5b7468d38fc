#include "submission_rules.hpp"

#include <algorithm>
#include <chrono>

#include <openssl/rand.h>

namespace postern::forwarder {

namespace {

bool contains(const std::vector<std::string>& list, std::string_view address) {
  return std::any_of(list.begin(), list.end(),
                     [&](const std::string& a) { return conf::same_address(a, address); });
}

std::string join(const std::vector<std::string>& list) {
  std::string out;
  for (const auto& a : list) out += (out.empty() ? "<" : ", <") + a + ">";
  return out;
}

smtp::reply refuse(int code, std::string_view enhanced, const std::string& text) {
  return smtp::make_reply(code, enhanced, text);
}

}  // namespace

route route_sender(const conf::forwarder_config& config, std::string_view sender) {
  route r;
  if (const conf::mailbox* m = config.registry.find(sender)) {
    r.mailbox = m;
    return r;
  }
  if (config.smarthost) {
    r.mailbox = &*config.smarthost;
    r.smarthost = true;
    return r;
  }
  r.refusal = refuse(550, "5.7.1",
                     "sender <" + std::string(sender) +
                         "> has no mailbox in the registry; this server relays only for its "
                         "mailboxes");
  return r;
}

route route_header(const conf::forwarder_config& config, const smtp::header_block& headers,
                   const route& envelope_route) {
  auto from = headers.values("From");
  std::vector<std::string> addresses;
  if (from.size() == 1) addresses = smtp::parse_address_list(from.front());
  if (addresses.size() != 1) {
    route r;
    r.refusal = refuse(550, "5.6.0",
                       from.empty()      ? "the message has no From: header"
                       : from.size() > 1 ? "the message has " + std::to_string(from.size()) +
                                               " From: fields; RFC 5322 allows exactly one"
                                         : "the From: header must name exactly one address");
    return r;
  }
  route by_header = route_sender(config, addresses.front());
  if (config.match == conf::sender_match::header || !by_header.mailbox) return by_header;
  // envelope+header: both must choose the same way out.
  if (by_header.mailbox != envelope_route.mailbox) {
    route r;
    r.refusal =
        refuse(550, "5.7.1",
               "envelope sender and From: <" + addresses.front() +
                   "> belong to different mailboxes; both must name the same sending mailbox");
    return r;
  }
  return by_header;
}

submission_plan plan_pec_submission(const conf::mailbox& mailbox, std::string_view mail_from,
                                    const std::vector<std::string>& accepted,
                                    const smtp::header_block& headers, conf::bcc_policy bcc,
                                    const std::vector<refused_recipient>& refused) {
  submission_plan plan;
  const std::string& box = mailbox.address;
  if (!conf::same_address(mail_from, box)) {
    plan.refusal = refuse(550, "5.7.1",
                          "PEC: the envelope sender <" + std::string(mail_from) +
                              "> must be the mailbox <" + box + ">");
    return plan;
  }
  auto from_values = headers.values("From");
  if (from_values.size() > 1) {
    plan.refusal = refuse(550, "5.6.0",
                          "PEC: the message has " + std::to_string(from_values.size()) +
                              " From: fields; it must have exactly one, the mailbox <" + box + ">");
    return plan;
  }
  auto from = from_values.size() == 1 ? smtp::parse_address_list(from_values.front())
                                      : std::vector<std::string>{};
  if (from.size() != 1 || !conf::same_address(from.front(), box)) {
    plan.refusal = refuse(550, "5.7.1",
                          "PEC: the From: header must be exactly the mailbox <" + box + ">" +
                              (from.empty() ? "" : ", not " + join(from)));
    return plan;
  }
  std::vector<std::string> to, listed;
  for (const auto& v : headers.values("To"))
    for (auto& a : smtp::parse_address_list(v)) to.push_back(a);
  listed = to;
  for (const auto& v : headers.values("Cc"))
    for (auto& a : smtp::parse_address_list(v)) listed.push_back(a);
  if (to.empty()) {
    plan.refusal =
        refuse(550, "5.6.0", "PEC: the message needs a To: header with at least one address");
    return plan;
  }
  std::vector<std::string> missing;
  for (const auto& a : listed)
    if (!contains(accepted, a) && !contains(missing, a)) missing.push_back(a);
  for (const auto& a : missing)
    for (const auto& r : refused)
      if (conf::same_address(r.address, a)) {
        plan.refusal =
            refuse(550, "5.7.1",
                   "PEC: the provider refused the To/Cc recipient <" + a + "> (" + r.reply +
                       "); a PEC message must reach every To/Cc address in one submission: correct "
                       "or remove that address and send again");
        return plan;
      }
  if (!missing.empty()) {
    plan.refusal = refuse(
        550, "5.7.1",
        "PEC: To/Cc name " + join(missing) +
            " but the envelope does not; every To/Cc address must be a recipient of the same "
            "submission (if your mail server splits messages by recipient, raise its "
            "per-message recipient limit)");
    return plan;
  }
  for (const auto& a : accepted) (contains(listed, a) ? plan.recipients : plan.bcc).push_back(a);
  if (!plan.bcc.empty() && bcc == conf::bcc_policy::reject)
    plan.refusal = refuse(550, "5.7.1",
                          "PEC does not allow Bcc: " + join(plan.bcc) +
                              " not in To/Cc; send them a separate message (or ask the "
                              "administrator for [pec] bcc = \"split\")");
  return plan;
}

smtp::reply check_size_limit(const conf::mailbox& mailbox, std::uint64_t size,
                             std::size_t recipients) {
  const auto& l = mailbox.limits;
  if (l.max_message_size == 0) return {};
  const std::uint64_t counted =
      l.size_divided_by_recipients ? size * std::max<std::size_t>(recipients, 1) : size;
  if (counted <= l.max_message_size) return {};
  std::string limit = std::to_string(l.max_message_size) + " bytes";
  return refuse(552, "5.3.4",
                l.size_divided_by_recipients
                    ? "message too big for the provider: " + std::to_string(size) + " bytes x " +
                          std::to_string(recipients) + " recipients exceeds " + limit +
                          " (the limit is shared among recipients)"
                    : "message too big for the provider: " + std::to_string(size) +
                          " bytes exceeds " + limit);
}

std::string apply_pec_edits(smtp::header_block& headers, const std::string& receipt_type,
                            const std::string& hostname) {
  std::string changes;
  auto note = [&](const std::string& what) { changes += (changes.empty() ? "" : ",") + what; };
  for (const char* name :
       {"Disposition-Notification-To", "Return-Receipt-To", "X-Confirm-Reading-To", "Bcc"})
    if (headers.remove(name) > 0) note(std::string("removed:") + name);
  if (!headers.find("Message-ID")) {
    headers.add("Message-ID", new_message_id(hostname));
    note("added:Message-ID");
  }
  if (!receipt_type.empty()) {
    headers.remove("X-TipoRicevuta");
    headers.add("X-TipoRicevuta", receipt_type);
    note("set:X-TipoRicevuta");
  }
  return changes;
}

std::vector<std::string> relayed_params(bool pec, const smtp::ehlo_capabilities& caps, bool mail) {
  std::vector<std::string> keep;
  const bool dsn = caps.dsn && !pec;
  if (mail) {
    if (caps.size) keep.push_back("SIZE");
    if (caps.eightbitmime) keep.push_back("BODY");
    if (caps.smtputf8) keep.push_back("SMTPUTF8");
    if (dsn) keep.insert(keep.end(), {"RET", "ENVID"});
  } else if (dsn) {
    keep = {"NOTIFY", "ORCPT"};
  }
  return keep;
}

std::string new_message_id(const std::string& hostname) {
  uint8_t random[12];
  RAND_bytes(random, sizeof random);
  static const char hex[] = "0123456789abcdef";
  std::string id = "<";
  for (uint8_t b : random) {
    id += hex[b >> 4];
    id += hex[b & 15];
  }
  auto now = std::chrono::system_clock::now().time_since_epoch();
  id += "." + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now).count()) + "@" +
        hostname + ">";
  return id;
}

}  // namespace postern::forwarder
