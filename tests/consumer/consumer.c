/* A tiny program that uses only the installed public API. */
#include <stdio.h>
#include <string.h>

#include <secchat/secchat.h>

int main(void)
{
  if (secchat_init() != 0)
    return 1;
  if (strcmp(secchat_version_string(), SECCHAT_VERSION_STRING) != 0)
    return 2;
  printf("consumer ok: libsecchat %s, %s\n", secchat_version_string(),
         secchat_strerror(SECCHAT_ERR_DECRYPT));
  return 0;
}
