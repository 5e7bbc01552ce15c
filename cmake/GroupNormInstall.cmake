# Install rules: libgroupnorm.a, the public headers and the CMake package
# (GroupNormConfig.cmake, its version file and the exported GroupNorm::groupnorm).
# The CLI installs itself from tools/.
include(CMakePackageConfigHelpers)

set(GN_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/GroupNorm)

install(TARGETS groupnorm EXPORT GroupNormTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_SOURCE_DIR}/runtime/include/groupnorm/groupnorm.h
              ${PROJECT_SOURCE_DIR}/runtime/include/groupnorm/groupnorm.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/groupnorm)
install(EXPORT GroupNormTargets NAMESPACE GroupNorm:: DESTINATION ${GN_INSTALL_CMAKEDIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/GroupNormConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/GroupNormConfig.cmake
                              INSTALL_DESTINATION ${GN_INSTALL_CMAKEDIR})
# 0.x: minor versions may break the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/GroupNormConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/GroupNormConfig.cmake
              ${PROJECT_BINARY_DIR}/GroupNormConfigVersion.cmake
        DESTINATION ${GN_INSTALL_CMAKEDIR})
