# Cross toolchain: Debian's g++-aarch64-linux-gnu, binaries run under qemu-user
# (qemu-user-static). Halide generators still run on the build host: pass
# -DGroupNorm-halide_generators_ROOT=<host build tree> (scripts/build_aarch64.sh does).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Libraries and headers only from the aarch64 sysroot; packages (Halide's CMake helpers,
# the generator export, header-only DLPack) are host files the build passes explicitly.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# -L: the aarch64 dynamic loader and libc. The CPU model comes from QEMU_CPU (tests set it
# per ISA level); qemu's default CPU ("max") has every feature.
find_program(GN_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR "${GN_QEMU_AARCH64};-L;/usr/aarch64-linux-gnu")
