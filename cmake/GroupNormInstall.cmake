# Install rules: the libraries (runtime/CMakeLists.txt: GN_INSTALL_LIBS, static and shared,
# all families), the public headers, the CMake package (GroupNormConfig.cmake, its version
# file, the exported GroupNorm:: targets), pkg-config files, LICENSE and NOTICE.
# The CLI installs itself from tools/.
include(CMakePackageConfigHelpers)

set(GN_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/GroupNorm)

install(TARGETS ${GN_INSTALL_LIBS} EXPORT GroupNormTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_SOURCE_DIR}/runtime/include/groupnorm/groupnorm.h
              ${PROJECT_SOURCE_DIR}/runtime/include/groupnorm/groupnorm.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/groupnorm)
install(EXPORT GroupNormTargets NAMESPACE GroupNorm:: DESTINATION ${GN_INSTALL_CMAKEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE ${PROJECT_SOURCE_DIR}/NOTICE
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/groupnorm)

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/GroupNormConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/GroupNormConfig.cmake
                              INSTALL_DESTINATION ${GN_INSTALL_CMAKEDIR})
# 0.x: minor versions may break the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/GroupNormConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/GroupNormConfig.cmake
              ${PROJECT_BINARY_DIR}/GroupNormConfigVersion.cmake
        DESTINATION ${GN_INSTALL_CMAKEDIR})

# pkg-config: groupnorm.pc (every family) and groupnorm-<family>.pc, relocatable (paths
# relative to the .pc file). `-lgroupnorm` finds the shared library when one is installed
# (it records libstdc++ itself); a static link needs the C++ runtime, pthreads and libdl,
# hence Libs.private (`pkg-config --static`), or Libs when only static libraries exist.
set(gn_pc_dir ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
file(RELATIVE_PATH gn_pc_prefix "/${gn_pc_dir}" "/")
string(REGEX REPLACE "/$" "" gn_pc_prefix "${gn_pc_prefix}")
list(TRANSFORM CMAKE_DL_LIBS PREPEND "-l" OUTPUT_VARIABLE gn_dl_flags)
list(JOIN gn_dl_flags " " gn_dl_flags)
set(gn_pc_private "-lstdc++ -lm -lpthread ${gn_dl_flags}")
# DLPack's headers, when they are not where the compiler looks anyway.
set(gn_pc_cflags "")
get_target_property(gn_dlpack_includes dlpack::dlpack INTERFACE_INCLUDE_DIRECTORIES)
foreach (dir IN LISTS gn_dlpack_includes)
  if (dir AND NOT dir IN_LIST CMAKE_C_IMPLICIT_INCLUDE_DIRECTORIES)
    string(APPEND gn_pc_cflags " -I${dir}")
  endif ()
endforeach ()
foreach (lib IN LISTS GN_INSTALL_LIBS)
  if (lib MATCHES "_shared$")
    continue ()
  endif ()
  string(REPLACE "_" "-" pc_name "${lib}")
  if (GN_BUILD_SHARED)
    set(pc_libs "-L\${libdir} -l${lib}")
    set(pc_libs_private "${gn_pc_private}")
  else ()
    set(pc_libs "-L\${libdir} -l${lib} ${gn_pc_private}")
    set(pc_libs_private "")
  endif ()
  file(CONFIGURE OUTPUT ${PROJECT_BINARY_DIR}/pkgconfig/${pc_name}.pc CONTENT [[
prefix=${pcfiledir}/@gn_pc_prefix@
libdir=${prefix}/@CMAKE_INSTALL_LIBDIR@
includedir=${prefix}/@CMAKE_INSTALL_INCLUDEDIR@

Name: @pc_name@
Description: GroupNorm kernels (Halide, ahead-of-time compiled) behind a C API over DLPack
Version: @PROJECT_VERSION@
Cflags: -I${includedir}@gn_pc_cflags@
Libs: @pc_libs@
Libs.private: @pc_libs_private@
]] @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/pkgconfig/${pc_name}.pc DESTINATION ${gn_pc_dir})
endforeach ()
