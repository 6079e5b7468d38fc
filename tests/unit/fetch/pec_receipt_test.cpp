#include <catch2/catch.hpp>

#include "fetch/pec_receipt.hpp"
#include "forwarder/smtp/sasl.hpp"

using namespace postern::fetch;

namespace {

/// A receipt or envelope shaped as providers send them (RFC 6109 §2.1, §4.3): multipart/signed
/// around multipart/mixed holding the text, daticert.xml (base64) and, for envelopes, the
/// original message.
std::string pec_message(const std::string& headers, const std::string& daticert_xml,
                        const std::string& encoding = "base64") {
  std::string xml_part =
      encoding == "base64" ? postern::smtp::base64_encode(daticert_xml) : daticert_xml;
  if (encoding == "base64")
    for (std::size_t i = 76; i < xml_part.size(); i += 78) xml_part.insert(i, "\r\n");
  return headers +
         "MIME-Version: 1.0\r\n"
         "Content-Type: multipart/signed; protocol=\"application/x-pkcs7-signature\"; "
         "micalg=\"sha1\"; boundary=\"----=_outer\"\r\n\r\n"
         "This is an S/MIME signed message\r\n"
         "------=_outer\r\n"
         "Content-Type: multipart/mixed; boundary=\"----=_inner\"\r\n\r\n"
         "------=_inner\r\n"
         "Content-Type: text/plain; charset=iso-8859-1\r\n"
         "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
         "Ricevuta di accettazione\r\n"
         "------=_inner\r\n"
         "Content-Type: application/xml; name=\"daticert.xml\"\r\n"
         "Content-Disposition: inline; filename=\"daticert.xml\"\r\n"
         "Content-Transfer-Encoding: " +
         encoding + "\r\n\r\n" + xml_part +
         "\r\n"
         "------=_inner--\r\n\r\n"
         "------=_outer\r\n"
         "Content-Type: application/x-pkcs7-signature; name=\"smime.p7s\"\r\n"
         "Content-Transfer-Encoding: base64\r\n\r\n"
         "MIAGCSqGSIb3DQEHAqCAMIACAQExCzAJBgUrDgMCGgUAMIAGCSqGSIb3DQEHAQAAoIIF\r\n"
         "------=_outer--\r\n";
}

const char* accettazione_xml = R"(<?xml version="1.0" encoding="UTF-8"?>
<postacert tipo="accettazione" errore="nessuno">
  <intestazione>
    <mittente>ufficio@pec.example.it</mittente>
    <destinatari tipo="certificato">a@pec.dest.it</destinatari>
    <destinatari tipo="esterno">b@example.org</destinatari>
    <risposte>ufficio@pec.example.it</risposte>
    <oggetto>Fattura 12 &amp; allegati</oggetto>
  </intestazione>
  <dati>
    <gestore-emittente>ARUBA PEC S.p.A.</gestore-emittente>
    <data zona="+0100"><giorno>05/12/2024</giorno><ora>00:02:10</ora></data>
    <identificativo>opec21192.20241205000210.24820.46.1.184@pec.aruba.it</identificativo>
    <msgid>&lt;2839ed57@client.example&gt;</msgid>
  </dati>
</postacert>
)";

}  // namespace

TEST_CASE("an acceptance receipt: headers decide the kind, daticert gives the details") {
  auto info = classify_message(pec_message(
      "From: posta-certificata@pec.aruba.it\r\nSubject: ACCETTAZIONE: Fattura 12\r\n"
      "X-Ricevuta: accettazione\r\nX-Riferimento-Message-ID: <2839ed57@client.example>\r\n",
      accettazione_xml));
  CHECK(info.kind == pec_kind::accettazione);
  CHECK(info.referenced_message_id == "<2839ed57@client.example>");
  REQUIRE(info.cert);
  CHECK(info.problem.empty());
  CHECK(info.cert->tipo == "accettazione");
  CHECK(info.cert->errore == "nessuno");
  CHECK(info.cert->mittente == "ufficio@pec.example.it");
  CHECK(info.cert->destinatari == std::vector<std::string>{"a@pec.dest.it", "b@example.org"});
  CHECK(info.cert->oggetto == "Fattura 12 & allegati");
  CHECK(info.cert->giorno == "05/12/2024");
  CHECK(info.cert->ora == "00:02:10");
  CHECK(info.cert->zona == "+0100");
  CHECK(info.cert->msgid == "<2839ed57@client.example>");
  CHECK(info.cert->gestore == "ARUBA PEC S.p.A.");
}

TEST_CASE("Aruba reports a non-existent mailbox as errore=\"altro\" with errore-esteso") {
  auto info = classify_message(pec_message(
      "X-Ricevuta: errore-consegna\r\nX-Riferimento-Message-ID: <m1@client>\r\n",
      "<postacert tipo=\"errore-consegna\" errore=\"altro\"><intestazione><mittente>u@pec.it"
      "</mittente><destinatari tipo=\"certificato\">x@pec.it</destinatari></intestazione><dati>"
      "<consegna>x@pec.it</consegna><errore-esteso>5.1.1 - ARUBA PEC S.p.A. - indirizzo non "
      "valido</errore-esteso></dati></postacert>"));
  CHECK(info.kind == pec_kind::errore_consegna);
  REQUIRE(info.cert);
  CHECK(info.cert->errore == "altro");
  CHECK(info.cert->consegna == "x@pec.it");
  CHECK(info.cert->errore_esteso == "5.1.1 - ARUBA PEC S.p.A. - indirizzo non valido");
}

TEST_CASE("a transport envelope (\"Per conto di:\") is posta-certificata, with X-Ricevuta first") {
  std::string envelope =
      "From: \"Per conto di: mario@pec.it\" <posta-certificata@pec.aruba.it>\r\n"
      "X-Trasporto: posta-certificata\r\nX-Riferimento-Message-ID: <orig@client>\r\n";
  std::string xml =
      "<postacert tipo=\"posta-certificata\" errore=\"nessuno\"><dati>"
      "<msgid>&lt;orig@client&gt;</msgid></dati></postacert>";
  auto info = classify_message(pec_message(envelope, xml, "quoted-printable"));
  CHECK(info.kind == pec_kind::posta_certificata);
  REQUIRE(info.cert);
  CHECK(info.cert->msgid == "<orig@client>");
  // A receipt that also carries X-Trasporto is still the receipt.
  auto both = classify_headers(postern::smtp::header_block::parse(
      "X-Trasporto: posta-certificata\r\nX-Ricevuta: avvenuta-consegna\r\n"));
  CHECK(both.kind == pec_kind::avvenuta_consegna);
}

TEST_CASE("anomalies, ordinary mail and malformed daticert") {
  auto anomaly =
      classify_message("X-Trasporto: errore\r\nSubject: ANOMALIA MESSAGGIO: x\r\n\r\nbody");
  CHECK(anomaly.kind == pec_kind::anomalia);
  CHECK_FALSE(anomaly.cert);
  CHECK(classify_message("From: a@b\r\nSubject: hi\r\n\r\nbody\r\n").kind == pec_kind::not_pec);
  auto broken = classify_message(pec_message("X-Ricevuta: presa-in-carico\r\n", "not xml at all"));
  CHECK(broken.kind == pec_kind::presa_in_carico);
  CHECK_FALSE(broken.cert);
  CHECK(broken.problem == "daticert.xml has no <postacert> element");
  auto missing = classify_message("X-Ricevuta: accettazione\r\n\r\nplain body\r\n");
  CHECK(missing.kind == pec_kind::accettazione);
  CHECK(missing.problem == "no daticert.xml part");
  auto no_tipo =
      classify_message(pec_message("X-Ricevuta: accettazione\r\n", "<postacert></postacert>"));
  CHECK(no_tipo.problem == "daticert.xml: <postacert> has no tipo");
}
