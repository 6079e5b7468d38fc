#include "pec_receipt.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "forwarder/smtp/sasl.hpp"

namespace postern::fetch {

using smtp::header_block;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

/// The value of parameter `name` in a structured header ("multipart/mixed; boundary=..").
std::string header_param(std::string_view value, std::string_view name) {
  const std::string hay = lower(value);
  std::size_t pos = 0;
  while ((pos = hay.find(std::string(name) + "=", pos)) != std::string::npos) {
    if (pos == 0 || hay[pos - 1] == ';' || std::isspace(static_cast<unsigned char>(hay[pos - 1]))) {
      std::string_view rest = value.substr(pos + name.size() + 1);
      if (!rest.empty() && rest.front() == '"') {
        auto end = rest.find('"', 1);
        return std::string(rest.substr(1, end == std::string_view::npos ? rest.npos : end - 1));
      }
      return trim(rest.substr(0, rest.find(';')));
    }
    pos += name.size();
  }
  return {};
}

std::string xml_unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    auto semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out += s[i];
      continue;
    }
    std::string_view entity = s.substr(i + 1, semi - i - 1);
    if (entity == "lt")
      out += '<';
    else if (entity == "gt")
      out += '>';
    else if (entity == "amp")
      out += '&';
    else if (entity == "quot")
      out += '"';
    else if (entity == "apos")
      out += '\'';
    else if (entity.starts_with('#')) {
      unsigned code = 0;
      bool hex = entity.size() > 1 && (entity[1] == 'x' || entity[1] == 'X');
      auto digits = entity.substr(hex ? 2 : 1);
      std::from_chars(digits.data(), digits.data() + digits.size(), code, hex ? 16 : 10);
      if (code > 0 && code < 0x80) out += static_cast<char>(code);  // ASCII is all PEC needs
    } else {
      out += s.substr(i, semi - i + 1);
    }
    i = semi;
  }
  return out;
}

/// Text of every <tag>...</tag> element (attributes allowed) in order.
std::vector<std::string> elements(std::string_view xml, std::string_view tag) {
  std::vector<std::string> out;
  const std::string open = "<" + std::string(tag), close = "</" + std::string(tag) + ">";
  for (std::size_t pos = 0; (pos = xml.find(open, pos)) != std::string_view::npos;) {
    std::size_t after = pos + open.size();
    if (after >= xml.size() || (xml[after] != '>' && xml[after] != ' ' && xml[after] != '/')) {
      pos = after;
      continue;
    }
    auto gt = xml.find('>', after);
    if (gt == std::string_view::npos) break;
    if (xml[gt - 1] == '/') {  // <tag/>
      out.emplace_back();
      pos = gt;
      continue;
    }
    auto end = xml.find(close, gt);
    if (end == std::string_view::npos) break;
    out.push_back(trim(xml_unescape(xml.substr(gt + 1, end - gt - 1))));
    pos = end + close.size();
  }
  return out;
}

std::string first(std::string_view xml, std::string_view tag) {
  auto all = elements(xml, tag);
  return all.empty() ? std::string() : all.front();
}

/// An attribute of the first <tag ...> start tag.
std::string attribute(std::string_view xml, std::string_view tag, std::string_view name) {
  auto pos = xml.find("<" + std::string(tag));
  if (pos == std::string_view::npos) return {};
  auto gt = xml.find('>', pos);
  return xml_unescape(header_param(xml.substr(pos, gt - pos), name));
}

std::string decode_body(std::string_view body, const std::string& encoding) {
  if (encoding == "base64") {
    std::string compact;
    for (char c : body)
      if (!std::isspace(static_cast<unsigned char>(c))) compact += c;
    return smtp::base64_decode(compact).value_or("");
  }
  if (encoding == "quoted-printable") {
    std::string out;
    for (std::size_t i = 0; i < body.size(); ++i) {
      if (body[i] == '=' && i + 2 < body.size() && body[i + 1] == '\r' && body[i + 2] == '\n') {
        i += 2;
      } else if (body[i] == '=' && i + 1 < body.size() && body[i + 1] == '\n') {
        i += 1;
      } else if (body[i] == '=' && i + 2 < body.size()) {
        unsigned v = 0;
        auto [p, ec] = std::from_chars(body.data() + i + 1, body.data() + i + 3, v, 16);
        if (ec == std::errc() && p == body.data() + i + 3) {
          out += static_cast<char>(v);
          i += 2;
        } else {
          out += body[i];
        }
      } else {
        out += body[i];
      }
    }
    return out;
  }
  return std::string(body);
}

std::optional<std::string> find_in_part(std::string_view part, int depth) {
  if (depth > 10) return std::nullopt;  // nesting this deep is not a PEC message
  auto end = smtp::header_end(part);
  if (!end) return std::nullopt;
  std::size_t fields = *end - (*end >= 2 && part[*end - 2] == '\r' ? 2 : 1);
  header_block h = header_block::parse(part.substr(0, fields));
  std::string_view body = part.substr(*end);
  const auto* type = h.find("Content-Type");
  const std::string content_type = type ? type->value() : "";
  const auto* disposition = h.find("Content-Disposition");
  const std::string name =
      lower(header_param(content_type, "name") +
            (disposition ? header_param(disposition->value(), "filename") : ""));
  if (lower(content_type).starts_with("multipart/")) {
    const std::string boundary = header_param(content_type, "boundary");
    if (boundary.empty()) return std::nullopt;
    const std::string delimiter = "--" + boundary;
    std::size_t pos = body.find(delimiter);
    while (pos != std::string_view::npos) {
      std::size_t start = body.find('\n', pos);
      if (start == std::string_view::npos || body.compare(pos + delimiter.size(), 2, "--") == 0)
        break;
      std::size_t next = body.find("\n" + delimiter, start);
      std::string_view sub = body.substr(
          start + 1, next == std::string_view::npos ? std::string_view::npos : next - start);
      if (auto found = find_in_part(sub, depth + 1)) return found;
      pos = next == std::string_view::npos ? next : next + 1;
    }
    return std::nullopt;
  }
  if (name.find("daticert.xml") == std::string::npos) return std::nullopt;
  const auto* encoding = h.find("Content-Transfer-Encoding");
  return decode_body(body, encoding ? lower(trim(encoding->value())) : "");
}

}  // namespace

const char* to_string(pec_kind k) {
  switch (k) {
    case pec_kind::not_pec: return "not-pec";
    case pec_kind::accettazione: return "accettazione";
    case pec_kind::non_accettazione: return "non-accettazione";
    case pec_kind::presa_in_carico: return "presa-in-carico";
    case pec_kind::avvenuta_consegna: return "avvenuta-consegna";
    case pec_kind::errore_consegna: return "errore-consegna";
    case pec_kind::preavviso_errore_consegna: return "preavviso-errore-consegna";
    case pec_kind::rilevazione_virus: return "rilevazione-virus";
    case pec_kind::posta_certificata: return "posta-certificata";
    case pec_kind::anomalia: return "anomalia";
  }
  return "?";
}

pec_info classify_headers(const header_block& headers) {
  pec_info info;
  static const std::pair<const char*, pec_kind> receipts[] = {
      {"accettazione", pec_kind::accettazione},
      {"non-accettazione", pec_kind::non_accettazione},
      {"presa-in-carico", pec_kind::presa_in_carico},
      {"avvenuta-consegna", pec_kind::avvenuta_consegna},
      {"errore-consegna", pec_kind::errore_consegna},
      {"preavviso-errore-consegna", pec_kind::preavviso_errore_consegna},
      {"rilevazione-virus", pec_kind::rilevazione_virus}};
  if (const auto* f = headers.find("X-Ricevuta")) {
    const std::string value = lower(trim(f->value()));
    for (const auto& [word, kind] : receipts)
      if (value == word) info.kind = kind;
  }
  if (info.kind == pec_kind::not_pec)
    if (const auto* f = headers.find("X-Trasporto")) {
      const std::string value = lower(trim(f->value()));
      if (value == "posta-certificata") info.kind = pec_kind::posta_certificata;
      if (value == "errore") info.kind = pec_kind::anomalia;
    }
  if (const auto* f = headers.find("X-Riferimento-Message-ID"))
    info.referenced_message_id = f->value();
  return info;
}

std::optional<daticert> parse_daticert(std::string_view xml, std::string& problem) {
  if (xml.find("<postacert") == std::string_view::npos) {
    problem = "daticert.xml has no <postacert> element";
    return std::nullopt;
  }
  daticert d;
  d.tipo = attribute(xml, "postacert", "tipo");
  d.errore = attribute(xml, "postacert", "errore");
  if (d.tipo.empty()) {
    problem = "daticert.xml: <postacert> has no tipo";
    return std::nullopt;
  }
  d.mittente = first(xml, "mittente");
  d.destinatari = elements(xml, "destinatari");
  d.oggetto = first(xml, "oggetto");
  d.gestore = first(xml, "gestore-emittente");
  d.zona = attribute(xml, "data", "zona");
  d.giorno = first(xml, "giorno");
  d.ora = first(xml, "ora");
  d.identificativo = first(xml, "identificativo");
  d.msgid = first(xml, "msgid");
  d.consegna = first(xml, "consegna");
  d.errore_esteso = first(xml, "errore-esteso");
  return d;
}

std::optional<std::string> find_daticert(std::string_view message) {
  return find_in_part(message, 0);
}

pec_info classify_message(std::string_view message) {
  auto end = smtp::header_end(message);
  std::size_t fields =
      end ? *end - (*end >= 2 && message[*end - 2] == '\r' ? 2 : 1) : message.size();
  pec_info info = classify_headers(header_block::parse(message.substr(0, fields)));
  if (info.kind == pec_kind::not_pec || info.kind == pec_kind::anomalia) return info;
  if (auto xml = find_daticert(message)) {
    info.cert = parse_daticert(*xml, info.problem);
  } else {
    info.problem = "no daticert.xml part";
  }
  return info;
}

}  // namespace postern::fetch
