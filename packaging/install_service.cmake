# Installs siam-server.service and what it needs; run by `cmake --install` (component service)
# and by cpack, at install time, because the paths inside the files depend on the prefix of that
# install (cpack -G DEB installs with prefix /usr whatever the build directory was configured
# with). CMakeLists.txt sets the SIAM_* variables below before including this file.
#
#   PREFIX/bin/siam-*                                  (component programs, not here)
#   LIBEXECDIR/siam/siam-server-start                  starts siam-server, --resume when the
#                                                      checkpoint exists
#   UNITDIR/siam-server.service                        the unit
#   SYSCONFDIR/default/siam-server                     its settings (kept if present)
#   SYSUSERSDIR/siam.conf                              the siam system user (systemd-sysusers)
#
# With prefix /usr (a distribution package): SYSCONFDIR /etc, UNITDIR and SYSUSERSDIR from
# pkg-config systemd (/lib/systemd/system, /usr/lib/sysusers.d on Debian 12). With any other
# prefix P: P/etc, P/lib/systemd/system (systemd loads units from /usr/local/lib/systemd/system
# too), P/lib/sysusers.d. SIAM_SYSTEMD_UNIT_DIR and SIAM_SYSUSERS_DIR (cache) override the two.
set(prefix "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "(.)/+$" "\\1" prefix "${prefix}")

# DIR relative to the prefix unless absolute
function(siam_install_abs var dir)
  if(IS_ABSOLUTE "${dir}")
    set(${var} "${dir}" PARENT_SCOPE)
  else()
    set(${var} "${prefix}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

if(prefix STREQUAL "/usr")
  set(sysconf_default /etc)
  set(unit_default "${SIAM_SYSTEMD_UNIT_DIR_USR}")
  set(sysusers_default "${SIAM_SYSUSERS_DIR_USR}")
else()
  set(sysconf_default "${prefix}/etc")
  set(unit_default "${prefix}/lib/systemd/system")
  set(sysusers_default "${prefix}/lib/sysusers.d")
endif()
if(IS_ABSOLUTE "${SIAM_SYSCONFDIR}")
  set(sysconf_default "${SIAM_SYSCONFDIR}")
endif()
set(unit_dir "${unit_default}")
if(SIAM_SYSTEMD_UNIT_DIR)
  set(unit_dir "${SIAM_SYSTEMD_UNIT_DIR}")
endif()
set(sysusers_dir "${sysusers_default}")
if(SIAM_SYSUSERS_DIR)
  set(sysusers_dir "${SIAM_SYSUSERS_DIR}")
endif()
siam_install_abs(bindir "${SIAM_BINDIR}")
siam_install_abs(libexecdir "${SIAM_LIBEXECDIR}")
siam_install_abs(docdir "${SIAM_DOCDIR}")

# the values the .in files name
set(SIAM_SERVER "${bindir}/siam-server")
set(SIAM_START "${libexecdir}/siam/siam-server-start")
set(SIAM_ENV_FILE "${sysconf_default}/default/siam-server")
set(SIAM_DOC_DIR "${docdir}")
set(SIAM_STATE_DIR /var/lib/siam) # StateDirectory=siam of a system unit, whatever the prefix

# configured into a folder of the build directory of this install only, installed from there,
# then removed
string(RANDOM LENGTH 12 key)
set(out "${SIAM_BINARY_DIR}/packaging/install-${key}")
configure_file("${SIAM_PACKAGING_DIR}/siam-server.service.in" "${out}/siam-server.service" @ONLY)
configure_file("${SIAM_PACKAGING_DIR}/siam-server-start.in" "${out}/siam-server-start" @ONLY)
configure_file("${SIAM_PACKAGING_DIR}/siam-server.default.in" "${out}/siam-server" @ONLY)
configure_file("${SIAM_PACKAGING_DIR}/siam.sysusers" "${out}/siam.conf" COPYONLY)

file(INSTALL DESTINATION "${libexecdir}/siam" TYPE PROGRAM FILES "${out}/siam-server-start")
file(INSTALL DESTINATION "${unit_dir}" TYPE FILE FILES "${out}/siam-server.service")
file(INSTALL DESTINATION "${sysusers_dir}" TYPE FILE FILES "${out}/siam.conf")
# the settings are the administrator's once installed: an install over them keeps them (a .deb
# marks them a conffile, and dpkg asks)
if(EXISTS "$ENV{DESTDIR}${SIAM_ENV_FILE}")
  message(STATUS "Keeping: $ENV{DESTDIR}${SIAM_ENV_FILE} (present: not replaced by the default)")
else()
  file(INSTALL DESTINATION "${sysconf_default}/default" TYPE FILE FILES "${out}/siam-server")
endif()
file(REMOVE_RECURSE "${out}")
