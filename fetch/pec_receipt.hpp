#pragma once
/// Classification of retrieved PEC messages (RFC 6109 §3; real traffic uses the Italian
/// literals: daticert.xml, "Per conto di:", X-Trasporto): which receipt or envelope a message
/// is, which sent message it refers to, and what its daticert.xml says. Defensive throughout:
/// a malformed daticert is reported and the message is still delivered unchanged.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "forwarder/smtp/message_header.hpp"

namespace postern::fetch {

enum class pec_kind {
  not_pec,
  accettazione,
  non_accettazione,
  presa_in_carico,
  avvenuta_consegna,
  errore_consegna,
  preavviso_errore_consegna,
  rilevazione_virus,
  posta_certificata,  ///< transport envelope of a message received
  anomalia,           ///< anomaly envelope (X-Trasporto: errore)
};
const char* to_string(pec_kind k);

/// What daticert.xml says (RFC 6109 §4.4), fields left empty when absent.
struct daticert {
  std::string tipo;
  std::string errore;  ///< "nessuno", "no-dest", "no-dominio", "virus", "altro"
  std::string mittente;
  std::vector<std::string> destinatari;
  std::string oggetto;
  std::string gestore;
  std::string giorno, ora, zona;  ///< "dd/mm/yyyy", "hh:mm:ss", "+0100"
  std::string identificativo;     ///< the PEC msgid
  std::string msgid;              ///< the sender's original Message-ID, with <>
  std::string consegna;           ///< the recipient a delivery (failure) is about
  std::string errore_esteso;
};

struct pec_info {
  pec_kind kind = pec_kind::not_pec;
  std::string referenced_message_id;  ///< X-Riferimento-Message-ID
  std::optional<daticert> cert;       ///< when a daticert.xml part was found and parsed
  std::string problem;                ///< why daticert could not be read, "" if it could
};

/// Classifies by X-Ricevuta first, then X-Trasporto (an envelope also carries
/// X-Riferimento-Message-ID, so that header alone decides nothing).
pec_info classify_headers(const smtp::header_block& headers);

/// Parses daticert.xml; nullopt with `problem` set when it is not a postacert document.
std::optional<daticert> parse_daticert(std::string_view xml, std::string& problem);

/// Finds the daticert.xml part of a whole MIME message (nested multiparts, base64 or not)
/// and returns its decoded bytes; nullopt when there is none.
std::optional<std::string> find_daticert(std::string_view message);

/// classify_headers + find_daticert + parse_daticert for a whole message.
pec_info classify_message(std::string_view message);

}  // namespace postern::fetch
