# Dependencies of a cross build (the ARM tree), included from the top-level CMakeLists.
# - DLPack is header-only, but the host package points at /usr/include, which must not be
#   on a cross compiler's include path (host libc headers): stage the one header, as a
#   package (dlpack_DIR) so the installed GroupNormConfig's find_dependency works too.
# - GoogleTest: Debian's libgtest-dev ships its sources; build them with the cross compiler.
set(gn_xdlpack "${PROJECT_BINARY_DIR}/cross_deps/dlpack")
find_file(GN_DLPACK_HEADER dlpack/dlpack.h PATHS /usr/include NO_CACHE REQUIRED
          NO_CMAKE_FIND_ROOT_PATH)
file(COPY "${GN_DLPACK_HEADER}" DESTINATION "${gn_xdlpack}/include/dlpack")
file(WRITE "${gn_xdlpack}/dlpackConfig.cmake"
     "if (NOT TARGET dlpack::dlpack)\n"
     "  add_library(dlpack::dlpack INTERFACE IMPORTED)\n"
     "  set_target_properties(dlpack::dlpack PROPERTIES INTERFACE_INCLUDE_DIRECTORIES\n"
     "                        \"\${CMAKE_CURRENT_LIST_DIR}/include\")\n"
     "endif ()\n")
set(dlpack_DIR "${gn_xdlpack}" CACHE PATH "" FORCE)
find_package(dlpack REQUIRED)

if (GN_BUILD_TESTS)
  set(GN_GTEST_SOURCE_DIR /usr/src/googletest CACHE PATH "GoogleTest sources (libgtest-dev)")
  set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
  set(BUILD_GMOCK OFF CACHE BOOL "" FORCE)
  set(CMAKE_POLICY_VERSION_MINIMUM 3.10)  # its cmake_minimum_required predates 3.10
  add_subdirectory(${GN_GTEST_SOURCE_DIR} ${PROJECT_BINARY_DIR}/googletest EXCLUDE_FROM_ALL SYSTEM)
  unset(CMAKE_POLICY_VERSION_MINIMUM)
  if (NOT TARGET GTest::gtest)  # GoogleTest >= 1.11 defines the aliases itself
    add_library(GTest::gtest ALIAS gtest)
    add_library(GTest::gtest_main ALIAS gtest_main)
  endif ()
endif ()
