/* helper_version: prints the library version (the README's main command
 * runs it until chatd exists). */
#include <stdio.h>

#include <secchat/secchat.h>

int main(void)
{
  if (secchat_init() != 0) {
    fprintf(stderr, "secchat_init failed\n");
    return 1;
  }
  printf("libsecchat %s (0x%06x)\n", secchat_version_string(), (unsigned)secchat_version_number());
  return 0;
}
