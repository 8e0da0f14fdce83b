/*
 * chatd_logprobe: writes log records through chatd's logger and syslog
 * client, for tests/python/test_chatd_syslog.py (real rsyslog).
 *
 *   chatd_logprobe LOG_FILE SYSLOG_URI COUNT
 *
 * Record i is "info probe seq=i user=<id> reason=<D8 string i % 5>",
 * identities plain (so the collector side can check the escaping). Then it
 * flushes the syslog queue (5 s at most) and prints the client's counters
 * as "submitted=N sent=N dropped=N send_errors=N". Exit 0 if every record
 * was sent, 1 otherwise, 2 on bad arguments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "syslog.h"

static const char *const d8[] = {
  "eve\ninjected line", "cr\rreturn", "\x1b[2Jclear", "\x1b]52;c;SGVsbG8=\x07",
  ("abc\xe2\x80\xae" "fdp.exe"),
};

int main(int argc, char **argv)
{
  chatd_syslog_options so;
  chatd_log_options lo;
  chatd_syslog_stats st;
  chatd_syslog *sl;
  chatd_log *lg;
  chatd_addr addr;
  char err[512];
  unsigned count;

  if (argc != 4 || chatd_parse_uint(argv[3], 1, 1000000, &count) != 0) {
    fprintf(stderr, "usage: chatd_logprobe LOG_FILE SYSLOG_URI COUNT\n");
    return 2;
  }
  memset(&so, 0, sizeof so);
  if (chatd_parse_syslog_uri(argv[2], &so.transport, &addr, err, sizeof err) != 0) {
    fprintf(stderr, "chatd_logprobe: %s: %s\n", argv[2], err);
    return 2;
  }
  so.addr = addr.ss;
  so.addrlen = addr.len;
  if (chatd_syslog_new(&sl, &so, err, sizeof err) != 0) {
    fprintf(stderr, "chatd_logprobe: %s\n", err);
    return 1;
  }
  memset(&lo, 0, sizeof lo);
  lo.path = argv[1];
  lo.level = CHATD_LOG_INFO;
  lo.ids = CHATD_LOG_IDS_PLAIN;
  lo.syslog = sl;
  if (chatd_log_new(&lg, &lo, err, sizeof err) != 0) {
    fprintf(stderr, "chatd_logprobe: %s\n", err);
    chatd_syslog_free(sl);
    return 1;
  }
  for (unsigned i = 0; i < count; i++) {
    const char *r = d8[i % (sizeof d8 / sizeof d8[0])];
    CHATD_LOG(lg, CHATD_LOG_INFO, "probe", chatd_f_uint("seq", i),
              chatd_f_id("user", "mallory", 7), chatd_f_str("reason", r));
  }
  chatd_syslog_flush(sl, 5000);
  chatd_syslog_stats_get(sl, &st);
  printf("submitted=%llu sent=%llu dropped=%llu send_errors=%llu\n",
         (unsigned long long)st.submitted, (unsigned long long)st.sent,
         (unsigned long long)st.dropped, (unsigned long long)st.send_errors);
  chatd_log_free(lg);
  chatd_syslog_free(sl);
  return st.sent == count ? 0 : 1;
}
