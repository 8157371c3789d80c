{
  "targets": [
    {
      "target_name": "fuse3",
      "sources": ["src/fuse3.c", "src/unmount-guard.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2", "<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)", "-ldl"],
      "defines": ["NAPI_VERSION=8"]
    },
    {
      "target_name": "s3cryptfs-unmount-guard",
      "type": "executable",
      "sources": ["src/unmount-guard-main.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"]
    }
  ]
}
