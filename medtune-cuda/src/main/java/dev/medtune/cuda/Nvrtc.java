package dev.medtune.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;

/**
 * Compiles medtune's kernels (the {@code .cu} resources under {@code dev/medtune/cuda/kernels})
 * with NVRTC ({@code libnvrtc.so.13}) into a cubin for the device's architecture
 * ({@code --gpu-architecture=sm_XY} from its compute capability), once: the cubin is cached in
 * {@code $MEDTUNE_CUDA_CACHE} or {@code ~/.cache/medtune/cuda/<sha-256>.cubin}, keyed by the
 * source, the options and the NVRTC version, and written atomically (temp file, rename).
 */
final class Nvrtc {

  /** The kernel files, concatenated in this order into one program (common.cuh first). */
  static final List<String> SOURCES = List.of(
      "common.cuh", "cast.cu", "embedding.cu", "rmsnorm.cu", "rope.cu", "attention.cu",
      "swiglu.cu", "add.cu", "softmax.cu", "attention_backward.cu", "attention_tiled.cu", "flash_attention.cu", "cross_entropy.cu",
      "optimizer.cu", "argmax.cu", "gemv_rows.cu", "gemv.cu", "sample.cu", "attention_decode.cu");

  private Nvrtc() {}

  /** All kernel sources as one translation unit. */
  static String source() {
    StringBuilder sb = new StringBuilder();
    for (String name : SOURCES) {
      String path = "/dev/medtune/cuda/kernels/" + name;
      try (InputStream in = Nvrtc.class.getResourceAsStream(path)) {
        if (in == null) {
          throw new CudaException("kernel source " + path + " is missing from the medtune-cuda jar");
        }
        sb.append("// ---- ").append(name).append('\n');
        sb.append(new String(in.readAllBytes(), StandardCharsets.UTF_8)).append('\n');
      } catch (IOException e) {
        throw new CudaException("reading kernel source " + path + ": " + e.getMessage());
      }
    }
    return sb.toString();
  }

  static Path cacheDir() {
    String env = System.getenv("MEDTUNE_CUDA_CACHE");
    if (env != null && !env.isBlank()) {
      return Path.of(env);
    }
    String xdg = System.getenv("XDG_CACHE_HOME");
    Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
    return base.resolve("medtune").resolve("cuda");
  }

  /**
   * The cubin of {@code source} for {@code sm_<major><minor>}: from the cache when present, else
   * compiled (and cached). Returns the image and whether it came from the cache.
   */
  static Compiled cubin(String source, int major, int minor) {
    String arch = "sm_" + major + minor;
    List<String> options = List.of("--gpu-architecture=" + arch, "--std=c++17", "-default-device");
    Library nvrtc = Library.get();
    String key = sha256(source + "\0" + options + "\0" + nvrtc.version());
    Path cached = cacheDir().resolve(key + ".cubin");
    try {
      if (Files.isRegularFile(cached)) {
        return new Compiled(Files.readAllBytes(cached), arch, true, cached);
      }
    } catch (IOException e) {
      // unreadable cache entry: compile again below
    }
    byte[] image = nvrtc.compile(source, "medtune_kernels.cu", options, arch);
    try {
      Files.createDirectories(cached.getParent());
      Path tmp = Files.createTempFile(cached.getParent(), key, ".tmp");
      Files.write(tmp, image);
      try {
        Files.move(tmp, cached, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      } catch (AtomicMoveNotSupportedException e) {
        Files.move(tmp, cached, StandardCopyOption.REPLACE_EXISTING);
      }
    } catch (IOException e) {
      // a read-only home still runs; it compiles on every start
    }
    return new Compiled(image, arch, false, cached);
  }

  record Compiled(byte[] image, String arch, boolean fromCache, Path cacheFile) {}

  private static String sha256(String s) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /** The NVRTC library: a few functions of {@code nvrtc.h}. */
  static final class Library {

    private static Library instance;

    final NativeLibraries.Library lib;
    private final MethodHandle nvrtcVersion;
    private final MethodHandle nvrtcGetErrorString;
    private final MethodHandle nvrtcCreateProgram;
    private final MethodHandle nvrtcCompileProgram;
    private final MethodHandle nvrtcGetProgramLogSize;
    private final MethodHandle nvrtcGetProgramLog;
    private final MethodHandle nvrtcGetCUBINSize;
    private final MethodHandle nvrtcGetCUBIN;
    private final MethodHandle nvrtcDestroyProgram;

    private Library(NativeLibraries.Library lib) {
      this.lib = lib;
      nvrtcVersion = lib.function("nvrtcVersion", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
      nvrtcGetErrorString = lib.function("nvrtcGetErrorString", FunctionDescriptor.of(ADDRESS, JAVA_INT));
      nvrtcCreateProgram = lib.function("nvrtcCreateProgram",
          FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS));
      nvrtcCompileProgram = lib.function("nvrtcCompileProgram", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS));
      nvrtcGetProgramLogSize = lib.function("nvrtcGetProgramLogSize", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
      nvrtcGetProgramLog = lib.function("nvrtcGetProgramLog", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
      nvrtcGetCUBINSize = lib.function("nvrtcGetCUBINSize", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
      nvrtcGetCUBIN = lib.function("nvrtcGetCUBIN", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
      nvrtcDestroyProgram = lib.function("nvrtcDestroyProgram", FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    static synchronized Library get() {
      if (instance == null) {
        instance = new Library(NativeLibraries.open("libnvrtc.so.13", "libnvrtc.so.", "NVRTC, the CUDA runtime compiler"));
      }
      return instance;
    }

    String version() {
      try (Arena a = Arena.ofConfined()) {
        MemorySegment major = a.allocate(JAVA_INT);
        MemorySegment minor = a.allocate(JAVA_INT);
        check("nvrtcVersion", (int) nvrtcVersion.invokeExact(major, minor), null);
        return major.get(JAVA_INT, 0) + "." + minor.get(JAVA_INT, 0);
      } catch (Throwable t) {
        throw wrap("nvrtcVersion", t);
      }
    }

    private void check(String call, int result, String log) {
      if (result != 0) {
        String text = "NVRTC error " + result;
        try {
          MemorySegment s = (MemorySegment) nvrtcGetErrorString.invokeExact(result);
          text = s.reinterpret(256).getString(0);
        } catch (Throwable t) {
          // keep the number
        }
        throw new CudaException(call + " failed: " + text + (log == null || log.isBlank() ? ""
            : "; compiler log: " + log.strip().replace('\n', ' ')));
      }
    }

    private static CudaException wrap(String call, Throwable t) {
      return t instanceof CudaException c ? c : new CudaException(call + " could not be called: " + t);
    }

    byte[] compile(String source, String name, List<String> options, String arch) {
      try (Arena a = Arena.ofConfined()) {
        MemorySegment prog = a.allocate(ADDRESS);
        check("nvrtcCreateProgram", (int) nvrtcCreateProgram.invokeExact(prog, a.allocateFrom(source),
            a.allocateFrom(name), 0, MemorySegment.NULL, MemorySegment.NULL), null);
        MemorySegment program = prog.get(ADDRESS, 0);
        try {
          MemorySegment opts = a.allocate(ADDRESS, options.size());
          for (int i = 0; i < options.size(); i++) {
            opts.setAtIndex(ADDRESS, i, a.allocateFrom(options.get(i)));
          }
          int r = (int) nvrtcCompileProgram.invokeExact(program, options.size(), opts);
          check("nvrtcCompileProgram(" + name + ", " + String.join(" ", options) + ")", r, r == 0 ? null : log(a, program));
          MemorySegment size = a.allocate(JAVA_LONG);
          check("nvrtcGetCUBINSize", (int) nvrtcGetCUBINSize.invokeExact(program, size), null);
          long n = size.get(JAVA_LONG, 0);
          if (n == 0) {
            throw new CudaException("nvrtcGetCUBINSize: NVRTC made no cubin for " + arch);
          }
          MemorySegment cubin = a.allocate(n);
          check("nvrtcGetCUBIN", (int) nvrtcGetCUBIN.invokeExact(program, cubin), null);
          return cubin.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        } finally {
          int ignored = (int) nvrtcDestroyProgram.invokeExact(prog);
        }
      } catch (Throwable t) {
        throw wrap("nvrtcCompileProgram", t);
      }
    }

    private String log(Arena a, MemorySegment program) {
      try {
        MemorySegment size = a.allocate(JAVA_LONG);
        if ((int) nvrtcGetProgramLogSize.invokeExact(program, size) != 0) {
          return "";
        }
        MemorySegment log = a.allocate(Math.max(1, size.get(JAVA_LONG, 0)));
        if ((int) nvrtcGetProgramLog.invokeExact(program, log) != 0) {
          return "";
        }
        return log.getString(0);
      } catch (Throwable t) {
        return "";
      }
    }
  }
}
