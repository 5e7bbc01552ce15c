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
set(expected include/groupnorm/groupnorm.h include/groupnorm/groupnorm.hpp
    share/doc/groupnorm/LICENSE share/doc/groupnorm/NOTICE)
if (EXPECT_CLI)  # built unless GN_BUILD_TOOLS=OFF
  list(APPEND expected bin/groupnorm)
endif ()
foreach (f IN LISTS expected)
  if (NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "not installed: ${f}")
  endif ()
endforeach ()
file(GLOB_RECURSE pc_files "${prefix}/*/groupnorm.pc")
cmake_path(GET pc_files PARENT_PATH pc_dir)
cmake_path(GET pc_dir PARENT_PATH libdir)

# The package must stand without Halide: no Halide in its CMake files.
file(GLOB_RECURSE package_files "${prefix}/*.cmake")
foreach (f IN LISTS package_files)
  file(STRINGS "${f}" halide_lines REGEX "Halide::|\\(Halide")
  if (halide_lines)
    message(FATAL_ERROR "${f} refers to Halide: ${halide_lines}")
  endif ()
endforeach ()

# Every installed library exports the public API and nothing else (its Halide runtime is
# private), and leaves no halide_ symbol for the application to provide.
include(${CMAKE_CURRENT_LIST_DIR}/../../cmake/GroupNormPublicSymbols.cmake)
gn_public_symbol_regex("${prefix}/include/groupnorm/groupnorm.h")
file(GLOB libraries "${libdir}/libgroupnorm*.a" "${libdir}/libgroupnorm*.so")
list(LENGTH libraries n)
if (n LESS 2)
  message(FATAL_ERROR "expected the static libraries and more in ${libdir}, got: ${libraries}")
endif ()
foreach (lib IN LISTS libraries)
  set(dynamic "")
  if (lib MATCHES "\\.so$")
    set(dynamic -D)
  endif ()
  execute_process(COMMAND "${NM}" -g ${dynamic} --defined-only "${lib}" OUTPUT_VARIABLE defined
                  ERROR_QUIET)
  gn_check_public_symbols("${lib}" "${defined}")
  execute_process(COMMAND "${NM}" -g ${dynamic} --undefined-only "${lib}" OUTPUT_VARIABLE undefined
                  ERROR_QUIET)
  if (undefined MATCHES "halide_[A-Za-z0-9_]+")
    message(FATAL_ERROR "${lib} leaves ${CMAKE_MATCH_0} undefined")
  endif ()
  cmake_path(GET lib FILENAME name)
  message(STATUS "${name}: ${gn_public_count} global symbols, all public")
endforeach ()

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
cmake_path(GET consumer PARENT_PATH consumer_dir)
foreach (exe IN ITEMS consumer consumer_cpu consumer_shared)
  if (EXISTS "${consumer_dir}/${exe}")
    run("${exe}" ${emulator} "${consumer_dir}/${exe}")
  elseif (NOT exe STREQUAL "consumer_shared" OR EXPECT_SHARED)
    message(FATAL_ERROR "${exe} was not built")
  endif ()
endforeach ()
# GroupNorm::cpu links no GPU code: no GPU variant, no Halide GPU runtime.
execute_process(COMMAND "${NM}" "${consumer_dir}/consumer_cpu" OUTPUT_VARIABLE symbols)
if (symbols MATCHES "(halide_cuda_|halide_opencl_|gn_fwd_[a-z0-9_]*_(cuda|opencl))[A-Za-z0-9_]*")
  message(FATAL_ERROR "consumer_cpu (GroupNorm::cpu) contains GPU code: ${CMAKE_MATCH_0}")
endif ()

# A plain C program, one compiler call each: with pkg-config (the shared library when
# installed), and static: the archive plus the libraries the README lists.
if (PKG_CONFIG AND C_COMPILER)
  set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
  set(ENV{PKG_CONFIG_LIBDIR} "${pc_dir}")
  execute_process(COMMAND "${PKG_CONFIG}" --cflags --libs groupnorm OUTPUT_VARIABLE flags
                  OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
  separate_arguments(flags UNIX_COMMAND "${flags}")
  run("cc with pkg-config" "${C_COMPILER}" "${CONSUMER_DIR}/c_main.c" ${flags} -lm
      -o "${WORK_DIR}/c_consumer")
  set(ENV{LD_LIBRARY_PATH} "${libdir}")
  run("c_consumer" ${emulator} "${WORK_DIR}/c_consumer")
  unset(ENV{LD_LIBRARY_PATH})
  execute_process(COMMAND "${PKG_CONFIG}" --cflags groupnorm-cpu OUTPUT_VARIABLE cflags
                  OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
  separate_arguments(cflags UNIX_COMMAND "${cflags}")
  run("cc static" "${C_COMPILER}" "${CONSUMER_DIR}/c_main.c" ${cflags}
      "${libdir}/libgroupnorm_cpu.a" -lstdc++ -lm -lpthread -ldl -o "${WORK_DIR}/c_consumer_static")
  run("c_consumer_static" ${emulator} "${WORK_DIR}/c_consumer_static")
else ()
  message(FATAL_ERROR "no pkg-config (${PKG_CONFIG}) or C compiler (${C_COMPILER})")
endif ()
