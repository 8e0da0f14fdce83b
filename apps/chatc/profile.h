/*
 * profile.h: chatc's small local notes next to the client state (HOME/profile,
 * JSON, mode 0600): our registered name, the last state counter written
 * (the rollback floor passed to secchat_client_import_state) and the names
 * of chats as we know them locally (chat names are not part of the group
 * protocol: a chat we created has the name we gave it, a chat we were
 * invited to has none until we name it).
 *
 * Nothing secret is kept here; the file is still private (store rules).
 * Threads: one thread at a time per chatc_profile.
 */
#ifndef CHATC_PROFILE_H
#define CHATC_PROFILE_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

#define CHATC_FILE_PROFILE "profile"
#define CHATC_PROFILE_MAX (1024u * 1024u)

typedef struct chatc_profile_chat {
  uint8_t id[16];
  char *name; /* NULL: none */
  int admin;  /* we created it */
} chatc_profile_chat;

typedef struct chatc_profile {
  char *name;       /* our registered name, NULL before registration */
  uint64_t counter; /* last state counter written */
  chatc_profile_chat *chats;
  size_t nchats;
} chatc_profile;

/* Load HOME/profile (missing: empty profile). CHATC_STORE_* results. */
int chatc_profile_load(chatc_profile *p, const chatc_store *st, char *err, size_t errlen);
int chatc_profile_save(const chatc_profile *p, const chatc_store *st, char *err, size_t errlen);
void chatc_profile_free(chatc_profile *p);

/* The entry of chat id, or NULL. */
chatc_profile_chat *chatc_profile_chat_find(chatc_profile *p, const uint8_t id[16]);
/* Add (or rename) chat id; name may be NULL. -1 if out of memory. */
int chatc_profile_chat_set(chatc_profile *p, const uint8_t id[16], const char *name, int admin);
/* -1 if out of memory. */
int chatc_profile_set_name(chatc_profile *p, const char *name);

#endif /* CHATC_PROFILE_H */
