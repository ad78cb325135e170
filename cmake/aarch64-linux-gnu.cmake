# Cross-compiling for ARM64 Linux on an x86-64 Debian machine: Debian's cross compiler
# (g++-aarch64-linux-gnu), the libraries the tests link from multiarch :arm64 packages
# (libgtest-dev:arm64; CLI11 and nlohmann-json are headers), and qemu-user to run what
# it builds, tests included (CTest and gtest_discover_tests go through the emulator).
# `make test-arm64` installs all of that and uses this file.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Libraries and their CMake packages in /usr/lib/aarch64-linux-gnu.
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# The cross toolchain's C and C++ runtimes live in /usr/aarch64-linux-gnu.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
