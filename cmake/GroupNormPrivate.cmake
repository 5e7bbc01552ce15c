# Script (cmake -P) behind runtime/CMakeLists.txt's private libraries: links the objects
# listed in OBJECT_LIST (one per line) into one relocatable object OUTPUT whose only global
# definitions are the public API (GroupNormPublicSymbols.cmake: groupnorm.h's functions and
# the C++ API in namespace groupnorm, not groupnorm::detail). Everything else, the Halide runtime first (its error handler, thread
# pool, CPU feature hook, device state), becomes local: invisible to, and unshared with,
# other Halide code in the process.
#   -DLD= -DOBJCOPY= -DNM= -DHEADER=<groupnorm.h> -DOBJECT_LIST= -DOUTPUT=
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if (rc)
    message(FATAL_ERROR "${ARGN}\nfailed (${rc}): ${err}")
  endif ()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

include(${CMAKE_CURRENT_LIST_DIR}/GroupNormPublicSymbols.cmake)
gn_public_symbol_regex("${HEADER}")

file(STRINGS "${OBJECT_LIST}" objects)
set(merged "${OUTPUT}.merged.o")
# --force-group-allocation: C++ COMDAT groups become plain sections, so that a local copy of
# an inline function can never be discarded in favour of the application's copy.
run(${LD} -r --force-group-allocation -o "${merged}" ${objects})
run(${NM} -g --defined-only "${merged}")
string(REPLACE "\n" ";" lines "${run_output}")
set(keep "")
foreach (line IN LISTS lines)
  if (line MATCHES "^[0-9a-f]* [A-Za-z] (.+)$")
    set(sym "${CMAKE_MATCH_1}")
    if (sym MATCHES "${gn_public_regex}" AND NOT sym MATCHES "${gn_private_regex}")
      string(APPEND keep "${sym}\n")
    endif ()
  endif ()
endforeach ()
if (NOT keep MATCHES "gn_forward")
  message(FATAL_ERROR "${merged}: gn_forward not found among its symbols")
endif ()
file(WRITE "${OUTPUT}.public" "${keep}")
run(${OBJCOPY} "--keep-global-symbols=${OUTPUT}.public" "${merged}" "${OUTPUT}")
file(REMOVE "${merged}")

# Check: every global definition left is public.
run(${NM} -g --defined-only "${OUTPUT}")
gn_check_public_symbols("${OUTPUT}" "${run_output}")
