{
  "targets": [
    {
      "target_name": "kipvs_native",
      "sources": ["src/kipvs_native.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror"]
    },
    {
      "target_name": "uml_xstate_shim",
      "type": "shared_library",
      "sources": ["src/uml_xstate_shim.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-fPIC"],
      "libraries": ["-ldl"]
    }
  ]
}
