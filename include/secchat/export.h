/* secchat/export.h: symbol visibility. Only what carries SECCHAT_API is part
 * of the ABI; everything else is hidden (and the version script agrees). */
#ifndef SECCHAT_EXPORT_H
#define SECCHAT_EXPORT_H

#if defined(SECCHAT_BUILDING) && defined(__GNUC__)
#define SECCHAT_API __attribute__((visibility("default")))
#else
#define SECCHAT_API
#endif

#endif
