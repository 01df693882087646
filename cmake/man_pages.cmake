# Writes the man pages of the walcut CLI from its own --help with help2man:
# walcut.1, and walcut-<verb>.1 for every verb (walcut-snapshot-restore.1, ...).
#   cmake -DWALCUT=<walcut> -DHELP2MAN=<help2man> -DVERSION=<x.y.z> -DOUT_DIR=<dir> -DWORK_DIR=<dir>
#         -P man_pages.cmake
# The verbs are found by reading the help, so a new verb gets its page with no change here.
cmake_minimum_required(VERSION 3.22)

# Sets `out` to the help of the verb path ARGN ("" for the top level).
function(help_of out)
  execute_process(COMMAND ${WALCUT} ${ARGN} --help OUTPUT_VARIABLE help RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${WALCUT} ${ARGN} --help exited with ${rc}")
  endif()
  set(${out} "${help}" PARENT_SCOPE)
endfunction()

# Appends to `verbs` every verb under the verb path ARGN, each as its words joined by spaces.
function(find_verbs)
  help_of(help ${ARGN})
  string(REGEX MATCH "\nSubcommands:\n[^\n]+(\n  [^\n]+)*" listing "${help}")
  if(listing STREQUAL "")
    list(JOIN ARGN " " verb)
    list(APPEND verbs "${verb}")
  else()
    string(REGEX MATCHALL "\n  [^ \n]+" names "${listing}")
    foreach(name IN LISTS names)
      string(STRIP "${name}" name)
      find_verbs(${ARGN} ${name})
    endforeach()
  endif()
  set(verbs "${verbs}" PARENT_SCOPE)
endfunction()

# Sets `out` to the first line of the verb path ARGN's help: what it does.
function(summary_of out)
  help_of(help ${ARGN})
  string(REGEX MATCH "^[^\n]*" summary "${help}")
  string(REGEX REPLACE "^walcut: " "" summary "${summary}")
  set(${out} "${summary}" PARENT_SCOPE)
endfunction()

# Runs help2man on the help of the verb path `help_words`, with `summary` as the page's NAME line.
function(write_page page summary help_words include)
  list(JOIN help_words " " help_option)
  execute_process(
    COMMAND ${HELP2MAN} --no-info --section=1 --manual=walcut "--source=walcut ${VERSION}"
            "--version-string=${page} ${VERSION}" "--help-option=${help_option} --help" "--name=${summary}"
            "--include=${include}" "--output=${OUT_DIR}/${page}.1" ${WALCUT}
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "help2man for ${page} exited with ${rc}")
  endif()
  # The help's own headings become the man page's sections of those names.
  file(READ ${OUT_DIR}/${page}.1 roff)
  string(REPLACE ".SS \"Exit status:\"" ".SH \"EXIT STATUS\"" roff "${roff}")
  string(REPLACE ".SS \"Example:\"" ".SH EXAMPLE" roff "${roff}")
  file(WRITE ${OUT_DIR}/${page}.1 "${roff}")
endfunction()

file(REMOVE_RECURSE ${OUT_DIR} ${WORK_DIR})  # a verb that is gone leaves no page behind
file(MAKE_DIRECTORY ${OUT_DIR} ${WORK_DIR})
set(verbs "")
find_verbs()

set(verb_list "")
set(see_also "")
foreach(verb IN LISTS verbs)
  string(REPLACE " " "-" page "walcut-${verb}")
  string(REPLACE " " ";" words "${verb}")
  file(WRITE ${WORK_DIR}/${page}.h2m "[SEE ALSO]\n.BR walcut (1)\n")
  summary_of(summary ${words})
  write_page(${page} "${summary}" "${words}" ${WORK_DIR}/${page}.h2m)
  string(REPLACE "-" "\\-" roff_page "${page}")
  string(APPEND verb_list ".TP\n.B walcut ${verb}\n${summary} (\\fB${roff_page}\\fR(1))\n")
  if(see_also)
    string(APPEND see_also ",\n")
  endif()
  string(APPEND see_also ".BR ${roff_page} (1)")
endforeach()
file(WRITE ${WORK_DIR}/walcut.h2m "[VERBS]\n${verb_list}\n[SEE ALSO]\n${see_also}\n")
summary_of(summary)
write_page(walcut "${summary}" "" ${WORK_DIR}/walcut.h2m)
