# diffsearch_embed_templates(TARGET NAMESPACE FOLDER HEADER)
# Embeds FOLDER/*.tmpl (relative to the project root) into TARGET as raw
# string literals in a generated .cc that defines, in namespace
# diffsearch::NAMESPACE, embedded_templates() and embedded_template(name)
# as HEADER declares them (see render/embedded.h). Regenerated
# whenever a template changes; a new .tmpl file is picked up at the next
# configure (CONFIGURE_DEPENDS).
set(DIFFSEARCH_EMBED_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/embed_templates.cmake")
function(diffsearch_embed_templates target namespace folder header)
  file(GLOB templates CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/${folder}/*.tmpl")
  if(NOT templates)
    message(FATAL_ERROR "diffsearch_embed_templates(${target}): no .tmpl file in ${folder}")
  endif()
  get_filename_component(owner "${folder}" DIRECTORY)
  set(output "${PROJECT_BINARY_DIR}/${owner}/embedded_templates.cc")
  add_custom_command(
    OUTPUT "${output}"
    COMMAND "${CMAKE_COMMAND}" "-DOUTPUT=${output}" "-DTEMPLATES=${templates}" "-DNAMESPACE=${namespace}"
            "-DHEADER=${header}" "-DFOLDER=${folder}" -P "${DIFFSEARCH_EMBED_SCRIPT}"
    DEPENDS ${templates} "${DIFFSEARCH_EMBED_SCRIPT}"
    COMMENT "Embedding the templates of ${folder}"
    VERBATIM)
  target_sources(${target} PRIVATE "${output}")
endfunction()
