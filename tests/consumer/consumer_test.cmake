# Install.ConsumerProject: installs this build into a prefix inside the build tree, checks
# that every installed library exports only the public API, then configures, builds and
# runs tests/consumer against that prefix alone (static, CPU-only and shared libraries),
# with the same CMake, generator and compiler, and a C program built by one compiler call
# with pkg-config (included from tests/CMakeLists.txt).
find_program(GN_PKG_CONFIG NAMES pkgconf pkg-config REQUIRED)
add_test(NAME Install.ConsumerProject
         COMMAND ${CMAKE_COMMAND}
                 "-DBUILD_DIR=${CMAKE_BINARY_DIR}"
                 "-DCONSUMER_DIR=${CMAKE_CURRENT_LIST_DIR}"
                 "-DWORK_DIR=${CMAKE_BINARY_DIR}/install_test"
                 "-DCONFIG=$<CONFIG>"
                 "-DGENERATOR=${CMAKE_GENERATOR}"
                 "-DMAKE_PROGRAM=${CMAKE_MAKE_PROGRAM}"
                 "-DCXX_COMPILER=${CMAKE_CXX_COMPILER}"
                 "-DNM=${CMAKE_NM}"
                 "-DEXPECT_CLI=$<TARGET_EXISTS:groupnorm_cli>"
                 "-DEXPECT_SHARED=${GN_BUILD_SHARED}"
                 "-DPKG_CONFIG=${GN_PKG_CONFIG}"
                 "-DC_COMPILER=${CMAKE_C_COMPILER}"
                 # Cross builds: same toolchain, the consumer runs under the emulator.
                 "-DTOOLCHAIN=${CMAKE_TOOLCHAIN_FILE}"
                 "-DDLPACK_DIR=$<$<BOOL:${CMAKE_CROSSCOMPILING}>:${dlpack_DIR}>"
                 "-DEMULATOR=$<JOIN:${CMAKE_CROSSCOMPILING_EMULATOR},|>"
                 -P ${CMAKE_CURRENT_LIST_DIR}/run_consumer_test.cmake)
set_tests_properties(Install.ConsumerProject PROPERTIES TIMEOUT 600 LABELS install)
