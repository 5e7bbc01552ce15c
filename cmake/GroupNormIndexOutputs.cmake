# cmake -DNAME=<variant> -P GroupNormIndexOutputs.cmake, in the generators' build folder:
# writes <variant>.s and <variant>.stmt as indexes of the per-target files Halide wrote for a
# multi-target library (see GroupNormVariants.cmake).
foreach (ext IN ITEMS s stmt)
  file(GLOB files RELATIVE "${CMAKE_CURRENT_BINARY_DIR}" "${NAME}-*.${ext}")
  list(JOIN files "\n" lines)
  file(WRITE "${NAME}.${ext}" "Per-target outputs of ${NAME} (a multi-target library):\n${lines}\n")
endforeach ()
