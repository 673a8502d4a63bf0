{
  "targets": [
    {
      "target_name": "mifo_native",
      "sources": ["src/addon.cc", "src/attention.cc", "src/common.cc", "src/fused.cc", "src/linalg.cc", "src/tensor_ops.cc"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-march=native", "-mprefer-vector-width=512", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd", "<!@(pkg-config --cflags openblas)"],
      "libraries": ["<!@(pkg-config --libs openblas)"]
    }
  ]
}
