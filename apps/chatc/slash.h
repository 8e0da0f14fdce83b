/*
 * slash.h: parse one interactive input line.
 *
 * A line starting with '/' is a command ("/invite bob"); any other line is
 * text for the current chat (CHATC_CMD_SEND with chat NULL). "//..." sends
 * the text "/..." (the first slash removed). Text lines are kept verbatim
 * (no trimming) but must be valid UTF-8 and at most CHATC_TEXT_MAX bytes.
 *
 * Command arguments are separated by spaces or tabs. An argument may be
 * quoted with double quotes to contain spaces ("/create \"book club\"");
 * inside or outside quotes a backslash takes the next character literally
 * (\" \\ \ ). /verify takes USER and then the rest of the line as the safety
 * number (its spaces are dropped: "/verify bob 12345 67890 ..." works).
 * Command names are case-sensitive and lower case.
 *
 * Threads: pure, thread-safe.
 */
#ifndef CHATC_SLASH_H
#define CHATC_SLASH_H

#include "command.h"

/* Parse len bytes of line (a trailing "\n" or "\r\n" is ignored) into *cmd
 * (which must be zeroed or cleared). Returns CHATC_PARSE_OK or a negative
 * chatc_parse_result with a message (usage included) in err; *cmd is left
 * cleared on failure. */
int chatc_slash_parse(const char *line, size_t len, chatc_cmd *cmd, char *err, size_t errlen);

#endif /* CHATC_SLASH_H */
