{
  "targets": [
    {
      "target_name": "aead",
      "sources": ["src/aead.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
