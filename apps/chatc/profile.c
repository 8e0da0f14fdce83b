/* profile.c: HOME/profile (see profile.h). */
#include "profile.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hex16(const uint8_t id[16], char out[33])
{
  static const char d[] = "0123456789abcdef";
  for (int i = 0; i < 16; i++) {
    out[2 * i] = d[id[i] >> 4];
    out[2 * i + 1] = d[id[i] & 15];
  }
  out[32] = 0;
}

static int unhex16(const char *s, uint8_t id[16])
{
  if (strlen(s) != 32)
    return -1;
  for (int i = 0; i < 16; i++) {
    unsigned v;
    if (sscanf(s + 2 * i, "%2x", &v) != 1)
      return -1;
    id[i] = (uint8_t)v;
  }
  return 0;
}

void chatc_profile_free(chatc_profile *p)
{
  for (size_t i = 0; i < p->nchats; i++)
    free(p->chats[i].name);
  free(p->chats);
  free(p->name);
  memset(p, 0, sizeof(*p));
}

chatc_profile_chat *chatc_profile_chat_find(chatc_profile *p, const uint8_t id[16])
{
  for (size_t i = 0; i < p->nchats; i++)
    if (memcmp(p->chats[i].id, id, 16) == 0)
      return &p->chats[i];
  return NULL;
}

int chatc_profile_chat_set(chatc_profile *p, const uint8_t id[16], const char *name, int admin)
{
  chatc_profile_chat *c = chatc_profile_chat_find(p, id);
  char *dup = NULL;

  if (name != NULL && (dup = strdup(name)) == NULL)
    return -1;
  if (c == NULL) {
    chatc_profile_chat *n = realloc(p->chats, (p->nchats + 1) * sizeof(*n));
    if (n == NULL) {
      free(dup);
      return -1;
    }
    p->chats = n;
    c = &n[p->nchats++];
    memset(c, 0, sizeof(*c));
    memcpy(c->id, id, 16);
  }
  if (dup != NULL || c->name == NULL) {
    free(c->name);
    c->name = dup;
  }
  c->admin |= admin;
  return 0;
}

int chatc_profile_set_name(chatc_profile *p, const char *name)
{
  char *dup = strdup(name);
  if (dup == NULL)
    return -1;
  free(p->name);
  p->name = dup;
  return 0;
}

int chatc_profile_load(chatc_profile *p, const chatc_store *st, char *err, size_t errlen)
{
  uint8_t *buf = NULL;
  size_t len = 0;
  json_error_t je;
  json_t *root, *v, *chats;
  int rc;

  memset(p, 0, sizeof(*p));
  rc = chatc_store_read_alloc(st, CHATC_FILE_PROFILE, CHATC_PROFILE_MAX, &buf, &len, err, errlen);
  if (rc == CHATC_STORE_MISSING)
    return CHATC_STORE_OK;
  if (rc != CHATC_STORE_OK)
    return rc;
  root = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &je);
  free(buf);
  if (!json_is_object(root)) {
    json_decref(root);
    snprintf(err, errlen, "%s/%s is corrupt", st->path, CHATC_FILE_PROFILE);
    return CHATC_STORE_INVALID;
  }
  if (json_is_string(v = json_object_get(root, "name")) &&
      chatc_profile_set_name(p, json_string_value(v)) != 0)
    goto nomem;
  if (json_is_integer(v = json_object_get(root, "counter")) && json_integer_value(v) > 0)
    p->counter = (uint64_t)json_integer_value(v);
  chats = json_object_get(root, "chats");
  if (json_is_object(chats)) {
    const char *k;
    json_t *c;
    json_object_foreach(chats, k, c)
    {
      uint8_t id[16];
      json_t *n = json_object_get(c, "name");
      if (unhex16(k, id) != 0)
        continue;
      if (chatc_profile_chat_set(p, id, json_is_string(n) ? json_string_value(n) : NULL,
                                 json_is_true(json_object_get(c, "admin"))) != 0)
        goto nomem;
    }
  }
  json_decref(root);
  return CHATC_STORE_OK;
nomem:
  json_decref(root);
  chatc_profile_free(p);
  snprintf(err, errlen, "out of memory");
  return CHATC_STORE_NOMEM;
}

int chatc_profile_save(const chatc_profile *p, const chatc_store *st, char *err, size_t errlen)
{
  json_t *root = json_object(), *chats = json_object();
  char *text;
  int rc;

  if (root == NULL || chats == NULL)
    goto nomem;
  json_object_set_new(root, "name", p->name ? json_string(p->name) : json_null());
  json_object_set_new(root, "counter", json_integer((json_int_t)p->counter));
  for (size_t i = 0; i < p->nchats; i++) {
    char hex[33];
    json_t *c = json_object();
    if (c == NULL)
      goto nomem;
    hex16(p->chats[i].id, hex);
    json_object_set_new(c, "name", p->chats[i].name ? json_string(p->chats[i].name) : json_null());
    json_object_set_new(c, "admin", json_boolean(p->chats[i].admin));
    json_object_set_new(chats, hex, c);
  }
  json_object_set_new(root, "chats", chats);
  chats = NULL;
  text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(root);
  if (text == NULL)
    goto nomem2;
  rc = chatc_store_write(st, CHATC_FILE_PROFILE, text, strlen(text), err, errlen);
  free(text);
  return rc;
nomem:
  json_decref(root);
  json_decref(chats);
nomem2:
  snprintf(err, errlen, "out of memory");
  return CHATC_STORE_NOMEM;
}
