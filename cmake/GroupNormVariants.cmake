# Reads the variant table (generators/variants.txt) and turns each row into an AOT library
# (add_halide_library, with STMT and ASSEMBLY beside it) and a registry row. Sets, in the
# caller's scope: gn_variant_rows (the registry's generated rows), gn_variant_includes,
# gn_variant_targets (and per library family: gn_variant_targets_cpu, _cuda, _opencl),
# gn_device_code ("family:variant:device code file", GPU rows).

set(_gn_type_f32 float32)
set(_gn_type_f16 float16)
set(_gn_type_bf16 bfloat16)
set(_gn_type_f64 float64)
# Per op: its generator, registry enum, and which buffers take x's type, which the
# parameters' (gamma's) type and which the compute type (float64 for f64 x, else float32:
# the statistics and eps).
set(_gn_op_fwd_generator group_norm_forward)
set(_gn_op_fwd_enum FORWARD)
set(_gn_op_fwd_x_typed x x_rows y)
set(_gn_op_fwd_param_typed gamma beta)
set(_gn_op_fwd_compute_typed eps mean rstd)
# res: the forward with the residual prologue (skip, skip_nc, skip_bias in; sum out), the
# same generator with residual=true; skip_type / skip_bias_type name x's and gamma's types.
set(_gn_op_res_generator group_norm_forward)
set(_gn_op_res_enum FORWARD_RESIDUAL)
set(_gn_op_res_x_typed x x_rows y)
set(_gn_op_res_param_typed gamma beta)
set(_gn_op_res_compute_typed eps mean rstd)
set(_gn_op_res_flags residual=true)
set(_gn_op_res_x_type_params skip_type)
set(_gn_op_res_param_type_params skip_bias_type)
set(_gn_op_bwd_generator group_norm_backward)
set(_gn_op_bwd_enum BACKWARD)
set(_gn_op_bwd_x_typed dy x dx)
set(_gn_op_bwd_param_typed gamma beta dgamma dbeta)
set(_gn_op_bwd_compute_typed mean rstd)
set(_gn_schedule_family_x86 X86)
set(_gn_schedule_family_arm Arm)
set(_gn_schedule_family_cuda Gpu)
set(_gn_schedule_family_opencl Gpu)

# Halide names multi-target STMT/ASSEMBLY outputs per target; the helper declares one file.
# Write the declared file as an index of the per-target ones, so that ninja finds every
# output it was promised and a no-op rebuild runs nothing.
set(_gn_index_script ${CMAKE_CURRENT_LIST_DIR}/GroupNormIndexOutputs.cmake)

# A tree whose kernels would be the same bits as another tree's (the sanitizer trees: the
# kernels are Halide's code generation, never instrumented) takes that tree's objects instead
# of generating them again: -DGN_KERNELS_FROM=<build tree>. Every tree writes what it built
# into generators/gn_kernels.cmake (objects per CPU variant and the settings that shape
# them); an importing tree checks the settings agree and serves only CPU rows.
set(gn_kernel_exports "")
function(gn_export_kernel name)
  get_target_property(srcs ${name} SOURCES)
  set(objects "")
  foreach (src IN LISTS srcs)
    cmake_path(ABSOLUTE_PATH src BASE_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
    list(APPEND objects "${src}")
  endforeach ()
  set(gn_kernel_exports "${gn_kernel_exports}set(gn_kernel_objects_${name} \"${objects}\")\n"
      PARENT_SCOPE)
endfunction()

function(gn_import_kernel name)
  if (NOT DEFINED gn_kernel_objects_${name})
    message(FATAL_ERROR "GN_KERNELS_FROM=${GN_KERNELS_FROM} has no ${name}: build that tree "
                        "with the same variant table and options")
  endif ()
  # Nothing to run: the target stands for the imported objects (gn_objects_of reads them).
  add_custom_target(${name})
  set_target_properties(${name} PROPERTIES GN_OBJECTS "${gn_kernel_objects_${name}}")
endfunction()

function(gn_add_variant)
  cmake_parse_arguments(ARG "" "OP;DTYPE;PARAMS;LAYOUT;FAMILY;CLASS;BOUNDS;TUNING" "" ${ARGN})
  if (ARG_DTYPE STREQUAL ARG_PARAMS)
    set(key ${ARG_DTYPE}_${ARG_LAYOUT})
  else ()
    set(key ${ARG_DTYPE}_g${ARG_PARAMS}_${ARG_LAYOUT})
  endif ()
  set(name gn_${ARG_OP}_${key}_${ARG_FAMILY})
  if (NOT ARG_CLASS STREQUAL "any")
    set(name ${name}_${ARG_CLASS})
  endif ()
  # GN_CPU_TUNING (edge builds): tuning fields for every CPU row, e.g. smaller unrolling.
  if (GN_CPU_TUNING AND ARG_FAMILY MATCHES "^(x86|arm)$")
    if (ARG_TUNING STREQUAL "-")
      set(ARG_TUNING "${GN_CPU_TUNING}")
    else ()
      set(ARG_TUNING "${ARG_TUNING},${GN_CPU_TUNING}")
    endif ()
  endif ()
  string(TOUPPER "${ARG_FAMILY}" family_uc)
  if (ARG_FAMILY MATCHES "^(x86|arm)$")
    set(runtime gn_runtime_cpu)
    set(device CPU)
  else ()
    set(runtime gn_runtime_gpu)
    set(device ${family_uc})
  endif ()
  set(targets ${GN_${family_uc}_TARGETS})
  set(params layout=${ARG_LAYOUT})
  foreach (buffer IN LISTS _gn_op_${ARG_OP}_x_typed)
    list(APPEND params ${buffer}.type=${_gn_type_${ARG_DTYPE}})
  endforeach ()
  foreach (buffer IN LISTS _gn_op_${ARG_OP}_param_typed)
    list(APPEND params ${buffer}.type=${_gn_type_${ARG_PARAMS}})
  endforeach ()
  set(compute_type float32)
  if (ARG_DTYPE STREQUAL "f64")
    set(compute_type float64)
  endif ()
  foreach (arg IN LISTS _gn_op_${ARG_OP}_compute_typed)
    list(APPEND params ${arg}.type=${compute_type})
  endforeach ()
  list(APPEND params ${_gn_op_${ARG_OP}_flags})
  foreach (param IN LISTS _gn_op_${ARG_OP}_x_type_params)
    list(APPEND params ${param}=${_gn_type_${ARG_DTYPE}})
  endforeach ()
  foreach (param IN LISTS _gn_op_${ARG_OP}_param_type_params)
    list(APPEND params ${param}=${_gn_type_${ARG_PARAMS}})
  endforeach ()
  if (ARG_CLASS MATCHES "^(split|group)$")
    list(APPEND params gpu_shape=${ARG_CLASS})
  endif ()
  set(tuning "")
  if (NOT ARG_TUNING STREQUAL "-")
    set(tuning "${ARG_TUNING}")
    string(REPLACE "," ";" tuning_params "${ARG_TUNING}")
    list(APPEND params ${tuning_params})
  endif ()
  set(extra_outputs "")
  if (device STREQUAL "CPU")
    set(schedule_family ${_gn_schedule_family_${ARG_FAMILY}})
  else ()
    set(schedule_family Gpu)
    set(extra_outputs DEVICE_CODE device_code_file)
  endif ()
  # A tuned class (groupnorm tune's table) whose kind and tuning an earlier tuned class has is
  # a registry row only, served by that class's function: the same code, built once.
  set(fn ${name})
  set(shares OFF)
  if (NOT ARG_CLASS MATCHES "^(any|split|group)$")
    string(MD5 code_key "${key}|${ARG_OP}|${ARG_FAMILY}|${tuning}")
    get_property(built GLOBAL PROPERTY gn_tuned_fn_${code_key})
    if (built)
      set(fn ${built})
      set(shares ON)
    else ()
      set_property(GLOBAL PROPERTY gn_tuned_fn_${code_key} ${name})
    endif ()
  endif ()
  if (shares)
    # Nothing to build.
  elseif (GN_KERNELS_FROM)
    gn_import_kernel(${name})
  else ()
    add_halide_library(${name} FROM ${GN_GENERATOR}
                       GENERATOR ${_gn_op_${ARG_OP}_generator}
                       FUNCTION_NAME ${name}
                       TARGETS ${targets}
                       USE_RUNTIME ${runtime}
                       PARAMS ${params}
                       STMT stmt_file
                       ASSEMBLY asm_file
                       ${extra_outputs})
    list(LENGTH targets target_count)
    if (target_count GREATER 1)
      add_custom_command(OUTPUT ${name}.h APPEND
                         COMMAND ${CMAKE_COMMAND} -DNAME=${name} -P ${_gn_index_script})
    endif ()
    if (device STREQUAL "CPU")
      gn_export_kernel(${name})
    endif ()
  endif ()
  # Android packaging is for inference apps: the forward variants.
  if (TARGET gn_android AND ARG_OP MATCHES "^(fwd|res)$" AND NOT shares)
    string(REPLACE "-linux" "-android" android_targets "${targets}")
    add_halide_library(${name}_android FROM ${GN_GENERATOR}
                       GENERATOR ${_gn_op_${ARG_OP}_generator}
                       FUNCTION_NAME ${name}
                       TARGETS ${android_targets}
                       USE_RUNTIME gn_runtime_android
                       PARAMS ${params})
    add_dependencies(gn_android ${name}_android)
    set(GN_ANDROID_LIBS ${GN_ANDROID_LIBS} $<TARGET_FILE:${name}_android> PARENT_SCOPE)
  endif ()

  # Bounds of the shape class: -1 = none.
  set(min_ng -1)
  set(max_ng -1)
  set(min_group -1)
  set(max_group -1)
  set(min_values -1)
  set(max_values -1)
  if (NOT ARG_BOUNDS STREQUAL "-")
    string(REPLACE "," ";" bounds "${ARG_BOUNDS}")
    foreach (bound IN LISTS bounds)
      if (NOT bound MATCHES "^(min_ng|max_ng|min_group|max_group|min_values|max_values)=([0-9]+)$")
        message(FATAL_ERROR "variants.txt: ${name}: bad bound '${bound}'")
      endif ()
      set(${CMAKE_MATCH_1} ${CMAKE_MATCH_2})
    endforeach ()
  endif ()
  string(TOUPPER "${ARG_DTYPE}" dt_uc)
  string(TOUPPER "${ARG_PARAMS}" pt_uc)
  string(TOUPPER "${ARG_LAYOUT}" layout_uc)
  set(row "GN_VARIANT(${name}, ${fn}, ${_gn_op_${ARG_OP}_enum}, ${device}, ${dt_uc}, ${layout_uc}, ${pt_uc}, ${ARG_FAMILY}, ${schedule_family}, ${ARG_CLASS}, ${min_ng}, ${max_ng}, ${min_group}, ${max_group}, ${min_values}, ${max_values}, \"${tuning}\")")
  set(gn_variant_rows "${gn_variant_rows}${row}\n" PARENT_SCOPE)
  if (shares)
    return ()
  endif ()
  set(gn_variant_includes "${gn_variant_includes}#include \"${name}.h\"\n" PARENT_SCOPE)
  set(gn_variant_targets ${gn_variant_targets} ${name} PARENT_SCOPE)
  # Per family library (runtime/CMakeLists.txt): cpu, cuda, opencl.
  if (device STREQUAL "CPU")
    set(lib_family cpu)
  else ()
    set(lib_family ${ARG_FAMILY})
  endif ()
  set(gn_variant_targets_${lib_family} ${gn_variant_targets_${lib_family}} ${name} PARENT_SCOPE)
  if (extra_outputs)
    cmake_path(ABSOLUTE_PATH device_code_file BASE_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
    set(gn_device_code ${gn_device_code} "${ARG_FAMILY}:${name}:${device_code_file}" PARENT_SCOPE)
  endif ()
  set(gn_kernel_exports "${gn_kernel_exports}" PARENT_SCOPE)
endfunction()

# Tuned rows from groupnorm tune's table (generators/tuning/<cpu family>.json; README
# "Tuning"): per (op, dtype, layout), the shape classes whose best candidate beat the
# defaults. Each becomes a row placed just before the table's own row for that key, so the
# registry's first-match lookup picks it inside its bounds and the table's row elsewhere:
# one source for the tuned variants and their dispatch predicates.
macro(gn_read_tuning_table file)
  if (EXISTS "${file}")
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${file})
    file(READ "${file}" _gn_tt)
    string(JSON _gn_family ERROR_VARIABLE _gn_err GET "${_gn_tt}" family)
    if (_gn_err OR NOT _gn_family STREQUAL GN_CPU_FAMILY)
      message(FATAL_ERROR "${file}: not a tuning table of family ${GN_CPU_FAMILY} (${_gn_err})")
    endif ()
    string(JSON _gn_n LENGTH "${_gn_tt}" classes)
    set(_gn_i 0)
    while (_gn_i LESS _gn_n)
      foreach (_gn_field IN ITEMS op dtype layout class bounds tuning)
        string(JSON _gn_${_gn_field} GET "${_gn_tt}" classes ${_gn_i} ${_gn_field})
      endforeach ()
      if (NOT _gn_class MATCHES "^(small|medium|large)(_in_cache)?$" OR NOT _gn_bounds MATCHES "^[a-z_=0-9,]+$")
        message(FATAL_ERROR "${file}: class ${_gn_i}: unknown class or bad bounds")
      endif ()
      if (NOT _gn_tuning STREQUAL "-")
        list(APPEND _gn_tuned_${_gn_op}_${_gn_dtype}_${_gn_layout} "${_gn_class}|${_gn_bounds}|${_gn_tuning}")
      endif ()
      math(EXPR _gn_i "${_gn_i} + 1")
    endwhile ()
  endif ()
endmacro()

# The table's row key (op, dtype, layout) has tuned rows: add them first (CPU rows whose
# parameters are x's dtype; the tuned fields override the row's own).
macro(gn_add_tuned_rows op dtype params layout family tuning)
  if ("${family}" MATCHES "^(x86|arm)$" AND "${dtype}" STREQUAL "${params}")
    foreach (_gn_row IN LISTS _gn_tuned_${op}_${dtype}_${layout})
      string(REPLACE "|" ";" _gn_row "${_gn_row}")
      list(GET _gn_row 0 _gn_tclass)
      list(GET _gn_row 1 _gn_tbounds)
      list(GET _gn_row 2 _gn_ttuning)
      if (NOT "${tuning}" STREQUAL "-")
        set(_gn_ttuning "${tuning},${_gn_ttuning}")
      endif ()
      gn_add_variant(OP ${op} DTYPE ${dtype} PARAMS ${params} LAYOUT ${layout} FAMILY ${family}
                     CLASS ${_gn_tclass} BOUNDS ${_gn_tbounds} TUNING ${_gn_ttuning})
    endforeach ()
  endif ()
endmacro()

# The rows this tree builds: its CPU family's, and the GPU families' when GN_GPU_BUILD is on
# (x86 hosts) and the family is in GN_GPU_FAMILIES. GN_VARIANTS (edge builds, e.g.
# "f32_nchw;f16_nhwc") keeps only the listed dtype/layout keys, GN_OPS (e.g. "fwd" for an
# inference-only app) the listed ops.
macro(gn_read_variant_table table)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${table})
  set(gn_variant_rows "")
  set(gn_variant_includes "")
  set(gn_variant_targets "")
  set(gn_variant_targets_cpu "")
  set(gn_variant_targets_cuda "")
  set(gn_variant_targets_opencl "")
  set(gn_device_code "")
  file(STRINGS ${table} _gn_lines)
  foreach (_gn_line IN LISTS _gn_lines)
    if (_gn_line MATCHES "^[ \t]*(#|$)")
      continue ()
    endif ()
    string(REGEX REPLACE "[ \t]+" ";" _gn_f "${_gn_line}")
    list(LENGTH _gn_f _gn_n)
    if (NOT _gn_n EQUAL 8)
      message(FATAL_ERROR "${table}: a row has 8 columns: '${_gn_line}'")
    endif ()
    list(GET _gn_f 0 _gn_op)
    list(GET _gn_f 1 _gn_dtype)
    list(GET _gn_f 2 _gn_params)
    list(GET _gn_f 3 _gn_layout)
    list(GET _gn_f 4 _gn_family)
    list(GET _gn_f 5 _gn_class)
    list(GET _gn_f 6 _gn_bounds)
    list(GET _gn_f 7 _gn_tuning)
    if (NOT DEFINED _gn_op_${_gn_op}_generator OR NOT DEFINED _gn_type_${_gn_dtype}
        OR NOT DEFINED _gn_type_${_gn_params} OR NOT _gn_layout MATCHES "^(nchw|nhwc)$"
        OR NOT _gn_family MATCHES "^(cpu|x86|arm|cuda|opencl)$"
        OR NOT _gn_class MATCHES "^(any|split|group)$")
      message(FATAL_ERROR "${table}: unknown op, dtype, layout, family or class: '${_gn_line}'")
    endif ()
    if (_gn_family STREQUAL "cpu")
      set(_gn_family ${GN_CPU_FAMILY})
    endif ()
    set(_gn_build ON)
    if (NOT _gn_op IN_LIST GN_OPS)
      set(_gn_build OFF)
    elseif (_gn_family MATCHES "^(x86|arm)$")
      if (NOT _gn_family STREQUAL GN_CPU_FAMILY)
        set(_gn_build OFF)
      endif ()
      if (_gn_dtype STREQUAL _gn_params)
        set(_gn_key ${_gn_dtype}_${_gn_layout})
      else ()
        set(_gn_key ${_gn_dtype}_g${_gn_params}_${_gn_layout})
      endif ()
      if (GN_VARIANTS AND NOT _gn_key IN_LIST GN_VARIANTS)
        set(_gn_build OFF)
      endif ()
    elseif (NOT GN_GPU_BUILD OR NOT _gn_family IN_LIST GN_GPU_FAMILIES)
      set(_gn_build OFF)
    endif ()
    if (_gn_build)
      gn_add_tuned_rows(${_gn_op} ${_gn_dtype} ${_gn_params} ${_gn_layout} ${_gn_family} ${_gn_tuning})
      gn_add_variant(OP ${_gn_op} DTYPE ${_gn_dtype} PARAMS ${_gn_params} LAYOUT ${_gn_layout}
                     FAMILY ${_gn_family} CLASS ${_gn_class} BOUNDS ${_gn_bounds}
                     TUNING ${_gn_tuning})
    endif ()
  endforeach ()
endmacro()
