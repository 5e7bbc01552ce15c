# The public API as symbols, shared by the private-library link (GroupNormPrivate.cmake) and
# the installed-package test (tests/consumer): the C functions groupnorm.h declares and the
# C++ API of namespace groupnorm (functions, typeinfo, vtables), mangled; groupnorm::detail
# is the implementation, and the kernels' own gn_fwd_* names are not API.

# Sets gn_public_regex and gn_private_regex: a global symbol is public when it matches the
# first and not the second.
function(gn_public_symbol_regex header)
  file(READ "${header}" text)
  string(REGEX MATCHALL "[ *](gn_[a-z0-9_]+)\\(" functions "${text}")
  list(TRANSFORM functions REPLACE "^[ *](.*)\\($" "\\1")
  list(JOIN functions "|" functions)
  set(gn_public_regex "^(${functions}|_Z(N|NK|TIN|TSN|TVN)9groupnorm[0-9A-Za-z_]*)$" PARENT_SCOPE)
  set(gn_private_regex "9groupnorm6detail" PARENT_SCOPE)
endfunction()

# Fails, naming `what`, when `nm` output (nm -g/-D --defined-only) has a non-public symbol.
function(gn_check_public_symbols what nm_output)
  string(REPLACE "\n" ";" lines "${nm_output}")
  set(count 0)
  foreach (line IN LISTS lines)
    if (line MATCHES "^[0-9a-f]* [A-Za-z] (.+)$")
      set(sym "${CMAKE_MATCH_1}")
      if (NOT sym MATCHES "${gn_public_regex}" OR sym MATCHES "${gn_private_regex}")
        message(FATAL_ERROR "${what}: non-public global symbol ${sym}")
      endif ()
      math(EXPR count "${count} + 1")
    endif ()
  endforeach ()
  set(gn_public_count ${count} PARENT_SCOPE)
endfunction()
