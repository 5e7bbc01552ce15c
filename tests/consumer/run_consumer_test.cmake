# Script (cmake -P) behind Install.ConsumerProject; see consumer_test.cmake.
function(run step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if (rc)
    message(FATAL_ERROR "${step} failed (${rc}): ${ARGN}")
  endif ()
endfunction()

set(prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")

run("install" ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}" --config "${CONFIG}")
set(expected include/groupnorm/groupnorm.h include/groupnorm/groupnorm.hpp)
if (EXPECT_CLI)  # built unless GN_BUILD_TOOLS=OFF
  list(APPEND expected bin/groupnorm)
endif ()
foreach (f IN LISTS expected)
  if (NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "not installed: ${f}")
  endif ()
endforeach ()

# The package must stand without Halide: no Halide in its CMake files, and every halide_
# symbol the archive uses defined inside it.
file(GLOB_RECURSE package_files "${prefix}/*.cmake")
foreach (f IN LISTS package_files)
  file(STRINGS "${f}" halide_lines REGEX "Halide::|\\(Halide")
  if (halide_lines)
    message(FATAL_ERROR "${f} refers to Halide: ${halide_lines}")
  endif ()
endforeach ()
file(GLOB_RECURSE archive "${prefix}/*libgroupnorm.a")
if (NOT archive)
  message(FATAL_ERROR "libgroupnorm.a not installed")
endif ()
if (NM)
  execute_process(COMMAND "${NM}" -g "${archive}" OUTPUT_VARIABLE symbols ERROR_QUIET)
  string(REGEX MATCHALL " U halide_[A-Za-z0-9_]+" undefined "${symbols}")
  string(REGEX MATCHALL " [A-TV-Za-tv-z] halide_[A-Za-z0-9_]+" defined "${symbols}")
  list(TRANSFORM undefined REPLACE "^ U " "")
  list(TRANSFORM defined REPLACE "^ . " "")
  list(REMOVE_DUPLICATES undefined)
  if (defined AND undefined)
    list(REMOVE_ITEM undefined ${defined})
  endif ()
  if (undefined)
    message(FATAL_ERROR "libgroupnorm.a leaves Halide symbols undefined: ${undefined}")
  endif ()
  list(LENGTH defined n)
  message(STATUS "libgroupnorm.a: no undefined halide_ symbols (${n} defined)")
endif ()

set(cross_args "")
if (TOOLCHAIN)
  # A cross toolchain searches its sysroot only: name the package prefixes themselves.
  file(GLOB_RECURSE config "${prefix}/*/GroupNormConfig.cmake")
  cmake_path(GET config PARENT_PATH config_dir)
  set(cross_args --toolchain "${TOOLCHAIN}" "-DGroupNorm_DIR=${config_dir}"
      "-Ddlpack_DIR=${DLPACK_DIR}")
endif ()
run("configure consumer" ${CMAKE_COMMAND} -S "${CONSUMER_DIR}" -B "${WORK_DIR}/build"
    -G "${GENERATOR}" "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}"
    "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DCMAKE_BUILD_TYPE=${CONFIG}"
    "-DCMAKE_PREFIX_PATH=${prefix}" ${cross_args})
run("build consumer" ${CMAKE_COMMAND} --build "${WORK_DIR}/build" --config "${CONFIG}")
set(consumer "${WORK_DIR}/build/consumer")
if (NOT EXISTS "${consumer}")  # multi-config generators
  set(consumer "${WORK_DIR}/build/${CONFIG}/consumer")
endif ()
string(REPLACE "|" ";" emulator "${EMULATOR}")
run("consumer" ${emulator} "${consumer}")
