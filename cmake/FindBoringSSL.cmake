# FindBoringSSL: BoringSSL as packaged by Debian (android-libboringssl-dev).
#
# Headers live in /usr/include/android/openssl and the libraries in
# /usr/lib/<triplet>/android. Both carry the same names as OpenSSL's, so this
# module searches only those directories and then checks that what it found is
# really BoringSSL: a silent fallback to OpenSSL would change TLS behaviour.
#
# Defines the imported targets BoringSSL::ssl and BoringSSL::crypto and the
# variable BoringSSL_LIBRARY_DIR (for RPATH: the directory is not in ld.so's path).

include(FindPackageHandleStandardArgs)

if(CMAKE_LIBRARY_ARCHITECTURE)
  set(_bssl_libdirs /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/android)
endif()
list(APPEND _bssl_libdirs /usr/lib/android)

find_path(BoringSSL_INCLUDE_DIR openssl/base.h
  PATHS /usr/include/android NO_DEFAULT_PATH)
find_library(BoringSSL_SSL_LIBRARY NAMES ssl PATHS ${_bssl_libdirs} NO_DEFAULT_PATH)
find_library(BoringSSL_CRYPTO_LIBRARY NAMES crypto PATHS ${_bssl_libdirs} NO_DEFAULT_PATH)

if(BoringSSL_INCLUDE_DIR)
  file(STRINGS "${BoringSSL_INCLUDE_DIR}/openssl/base.h" _bssl_api
       REGEX "^#define BORINGSSL_API_VERSION [0-9]+")
  if(NOT _bssl_api)
    message(FATAL_ERROR
      "FindBoringSSL: ${BoringSSL_INCLUDE_DIR}/openssl/base.h does not define "
      "BORINGSSL_API_VERSION: these are not BoringSSL headers. "
      "Install android-libboringssl-dev.")
  endif()
  string(REGEX REPLACE ".* ([0-9]+)$" "\\1" BoringSSL_API_VERSION "${_bssl_api}")
endif()

foreach(_lib BoringSSL_SSL_LIBRARY BoringSSL_CRYPTO_LIBRARY)
  if(${_lib} AND NOT ${_lib} MATCHES "/android/")
    message(FATAL_ERROR "FindBoringSSL: ${${_lib}} is not the Android BoringSSL build")
  endif()
endforeach()

find_package_handle_standard_args(BoringSSL
  REQUIRED_VARS BoringSSL_SSL_LIBRARY BoringSSL_CRYPTO_LIBRARY BoringSSL_INCLUDE_DIR
  VERSION_VAR BoringSSL_API_VERSION
  FAIL_MESSAGE "BoringSSL not found: apt-get install android-libboringssl-dev")

if(BoringSSL_FOUND AND NOT TARGET BoringSSL::crypto)
  get_filename_component(BoringSSL_LIBRARY_DIR "${BoringSSL_CRYPTO_LIBRARY}" DIRECTORY)
  add_library(BoringSSL::crypto SHARED IMPORTED)
  set_target_properties(BoringSSL::crypto PROPERTIES
    IMPORTED_LOCATION "${BoringSSL_CRYPTO_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${BoringSSL_INCLUDE_DIR}"
    INTERFACE_COMPILE_DEFINITIONS "POSTERN_BORINGSSL=1")
  add_library(BoringSSL::ssl SHARED IMPORTED)
  set_target_properties(BoringSSL::ssl PROPERTIES
    IMPORTED_LOCATION "${BoringSSL_SSL_LIBRARY}"
    INTERFACE_LINK_LIBRARIES BoringSSL::crypto)
endif()
mark_as_advanced(BoringSSL_INCLUDE_DIR BoringSSL_SSL_LIBRARY BoringSSL_CRYPTO_LIBRARY)
