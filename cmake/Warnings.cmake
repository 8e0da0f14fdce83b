# One warning policy for every target of the project.
set(SECCHAT_WARNINGS -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes
    -Wmissing-prototypes -Wvla -Wpointer-arith -Wcast-qual -Wundef)
if(SECCHAT_WERROR)
  list(APPEND SECCHAT_WARNINGS -Werror)
endif()
function(secchat_warnings target)
  target_compile_options(${target} PRIVATE ${SECCHAT_WARNINGS})
endfunction()
