# Embeds codegen/templates/*.tmpl, slurm/templates/*.tmpl (the batch
# scripts, rendered by diffsearch_slurm with this library's Template) and
# report/templates/*.tmpl (the HTML report, rendered by diffsearch_report) into
# diffsearch_codegen as raw string literals in a generated .cc (see
# codegen/templates.h), regenerated whenever a template changes. Included by
# the top-level CMakeLists.txt after the diffsearch_codegen library is declared.
file(GLOB DIFFSEARCH_CODEGEN_TEMPLATES CONFIGURE_DEPENDS "${CMAKE_CURRENT_LIST_DIR}/templates/*.tmpl"
     "${CMAKE_CURRENT_LIST_DIR}/../slurm/templates/*.tmpl"
     "${CMAKE_CURRENT_LIST_DIR}/../report/templates/*.tmpl")
set(DIFFSEARCH_CODEGEN_EMBEDDED "${CMAKE_CURRENT_BINARY_DIR}/codegen/embedded_templates.cc")
add_custom_command(
  OUTPUT "${DIFFSEARCH_CODEGEN_EMBEDDED}"
  COMMAND "${CMAKE_COMMAND}" "-DOUTPUT=${DIFFSEARCH_CODEGEN_EMBEDDED}"
          "-DTEMPLATES=${DIFFSEARCH_CODEGEN_TEMPLATES}"
          -P "${CMAKE_CURRENT_LIST_DIR}/embed_templates.cmake"
  DEPENDS ${DIFFSEARCH_CODEGEN_TEMPLATES} "${CMAKE_CURRENT_LIST_DIR}/embed_templates.cmake"
  COMMENT "Embedding the codegen templates"
  VERBATIM)
target_sources(diffsearch_codegen PRIVATE "${DIFFSEARCH_CODEGEN_EMBEDDED}")
