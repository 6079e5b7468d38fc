#pragma once
/// One pass over an IMAP mailbox, folder by folder in one session: each folder's state is
/// locked and loaded, the folder selected, the messages above the last one decided listed by
/// UID (nothing listed when UIDNEXT says nothing arrived), and each new message delivered ->
/// recorded with its identity (UIDVALIDITY/UID, size, SHA-256 of its header section) -> acted
/// on as `after` says (nothing, \Seen, UID MOVE, or \Deleted and UID EXPUNGE; never a bare
/// EXPUNGE). A UIDVALIDITY change re-identifies what was delivered by the recorded identities
/// and delivers only what is new, never deleting on the strength of an old UID.

#include <string>

#include <asio/awaitable.hpp>

#include "conf/fetch_config.hpp"
#include "fetch/fetch_run.hpp"

namespace postern::fetch {

asio::awaitable<mailbox_outcome> fetch_imap_mailbox(const conf::fetch_config& config,
                                                    const conf::mailbox& mailbox,
                                                    const run_options& options,
                                                    const std::string& session);

/// The state scope of an IMAP folder (state_store::open's `scope`).
std::string imap_scope(const std::string& folder);

}  // namespace postern::fetch
