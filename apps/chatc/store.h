/*
 * store.h: chatc's home directory and the files in it.
 *
 * Home: --home DIR, else $XDG_CONFIG_HOME/secchat (when set to an absolute
 * path), else $HOME/.config/secchat, else <passwd home>/.config/secchat.
 * Created with mode 0700 (missing parents too). A home, or any file in it,
 * that is not owned by the effective user or has a group/other permission
 * bit is refused with a message naming the path and the mode (D10 in
 * docs/security.md); so is a symbolic link in place of the home or a file.
 *
 * One chatc process per home: chatc_store_open() takes an exclusive
 * flock(2) on HOME/lock (which holds the owner's pid, for the message).
 *
 * Files are named relative to the home ([A-Za-z0-9._-], no "." or ".."
 * names, at most CHATC_STORE_NAME_MAX bytes) and always opened relative to
 * the home's directory descriptor with O_NOFOLLOW. Writes are atomic:
 * new file (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, random name) + write +
 * fsync + rename + fsync of the directory; a reader sees the old or the new
 * file, even across a crash.
 *
 * Local history (HOME/history/<32 hex>.log, one per chat; the name is a
 * BLAKE2b-128 hash of the chat id so no chat id appears in a file name):
 * an 8-byte magic "SCHIST1\n" followed by records, each a 4-byte big-endian
 * length (1..CHATC_HIST_RECORD_MAX) and that many opaque bytes (sealed by
 * libsecchat; this layer never looks inside). An append that takes the
 * file over the cap (default CHATC_HIST_CAP_DEFAULT) rewrites it atomically
 * without its oldest records, down to 3/4 of the cap (so the rewrite is not
 * repeated on every message). A torn last record (crash mid-append) is cut
 * off before the next append; readers ignore it.
 *
 * Errors: functions return CHATC_STORE_OK (0) or a negative result below,
 * with a one-line message in err (errlen bytes, may be NULL/0).
 * Threads: a chatc_store is used by one thread at a time.
 */
#ifndef CHATC_STORE_H
#define CHATC_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef enum chatc_store_result {
  CHATC_STORE_OK = 0,
  CHATC_STORE_MISSING = -1, /* no such file */
  CHATC_STORE_UNSAFE = -2,  /* mode, owner, symlink, not a regular file/dir */
  CHATC_STORE_INVALID = -3, /* bad name, too large, corrupt history file */
  CHATC_STORE_IO = -4,      /* any other system error */
  CHATC_STORE_LOCKED = -5,  /* another chatc process holds the home */
  CHATC_STORE_NOMEM = -6
} chatc_store_result;

#define CHATC_STORE_NAME_MAX 64u
#define CHATC_HIST_CAP_DEFAULT (16u * 1024u * 1024u)
#define CHATC_HIST_RECORD_MAX (1u * 1024u * 1024u)
#define CHATC_HIST_MAGIC "SCHIST1\n"
#define CHATC_HIST_MAGIC_LEN 8u

/* Well-known file names in the home (written by the chatc main program). */
#define CHATC_FILE_IDENTITY "identity"
#define CHATC_FILE_STATE "state"
#define CHATC_FILE_LOCK "lock"
#define CHATC_DIR_HISTORY "history"

typedef struct chatc_store {
  char path[4096];  /* the home, as resolved */
  int dirfd;        /* the home directory (O_DIRECTORY) */
  int histfd;       /* HOME/history, opened on first use; -1 before */
  char hist_path[4112]; /* HOME/history, for messages */
  int lockfd;       /* HOME/lock, flock'ed */
  size_t hist_cap;  /* bytes per history file */
} chatc_store;

/* Pure resolution: the home for these inputs (any may be NULL): opt_home
 * (--home) if given, else xdg + "/secchat" if xdg is absolute, else home +
 * "/.config/secchat" if home is absolute, else pw_dir + "/.config/secchat".
 * CHATC_STORE_INVALID if nothing applies or the result does not fit. */
int chatc_home_resolve(const char *opt_home, const char *xdg, const char *home,
                       const char *pw_dir, char *out, size_t cap, char *err, size_t errlen);

/* chatc_home_resolve with $XDG_CONFIG_HOME, $HOME and the passwd entry of
 * the effective user (looked up only when $HOME is unset or relative). */
int chatc_home_default(const char *opt_home, char *out, size_t cap, char *err, size_t errlen);

/* Create (0700) and check the home dir, then lock it. On failure *st is
 * left closed (fds -1). */
int chatc_store_open(chatc_store *st, const char *dir, char *err, size_t errlen);

/* Release the lock and close; safe on a closed or zeroed-then-failed store. */
void chatc_store_close(chatc_store *st);

/* Change the history cap (bytes, >= 4096). */
void chatc_store_set_hist_cap(chatc_store *st, size_t cap);

/* Read file name into buf (cap bytes, also the size limit); *len gets the
 * size. CHATC_STORE_MISSING if absent, UNSAFE (mode/owner/type), INVALID
 * (larger than cap). The caller wipes buf if it holds secrets; on failure
 * buf has been wiped already. */
int chatc_store_read(const chatc_store *st, const char *name, void *buf, size_t cap, size_t *len,
                     char *err, size_t errlen);

/* Same with a malloc'd buffer of the exact size (at most max bytes); the
 * caller frees it (wiping first if needed). An empty file gives *out NULL
 * and *len 0. */
int chatc_store_read_alloc(const chatc_store *st, const char *name, size_t max, uint8_t **out,
                           size_t *len, char *err, size_t errlen);

/* Atomically replace (or create) file name with len bytes, mode 0600. */
int chatc_store_write(const chatc_store *st, const char *name, const void *data, size_t len,
                      char *err, size_t errlen);

/* Remove file name; CHATC_STORE_MISSING if it was absent. */
int chatc_store_remove(const chatc_store *st, const char *name, char *err, size_t errlen);

/* History file name of a chat id (any bytes): 32 hex chars + ".log". */
void chatc_hist_name(const void *chat, size_t chat_len, char out[40]);

/* Append one opaque record (1..CHATC_HIST_RECORD_MAX bytes) to the chat's
 * history, dropping the oldest records when over the cap (see above). */
int chatc_hist_append(chatc_store *st, const void *chat, size_t chat_len, const void *rec,
                      size_t len, char *err, size_t errlen);

/* Load the chat's whole history file (at most max(cap, default cap) + one
 * record) into a
 * malloc'd buffer for chatc_hist_next. CHATC_STORE_MISSING if the chat has
 * no history yet; INVALID if the magic is wrong. */
int chatc_hist_load(chatc_store *st, const void *chat, size_t chat_len, uint8_t **buf,
                    size_t *len, char *err, size_t errlen);

/* Iterate a loaded history buffer: *off starts at 0. Returns 1 with *rec
 * and *rec_len set to the next record (pointing into buf), 0 at the end
 * (a torn or corrupt tail also ends the iteration: nothing after it is
 * trusted), -1 if buf does not start with the magic. */
int chatc_hist_next(const uint8_t *buf, size_t len, size_t *off, const uint8_t **rec,
                    size_t *rec_len);

#endif /* CHATC_STORE_H */
