package dev.medtune.cuda;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Finds and opens the NVIDIA libraries. Search order: {@code MEDTUNE_CUDA_LIB_DIR} (one folder
 * or several separated by ':'), then {@code LD_LIBRARY_PATH}, then the usual install folders
 * ({@code /usr/local/cuda/lib64}, {@code /usr/local/cuda/targets/x86_64-linux/lib},
 * {@code /usr/lib/x86_64-linux-gnu}, ...), each first by the exact file name and then by a glob
 * ({@code libnvrtc.so.*}) that takes the highest version; last the dynamic loader's own search
 * by file name (ld.so.cache, where the driver's {@code libcuda.so.1} usually is). A library
 * that is not found is a {@link CudaException} whose one line says where it looked.
 */
final class NativeLibraries {

  static final Linker LINKER = Linker.nativeLinker();

  private static final List<String> USUAL_DIRS = List.of(
      "/usr/local/cuda/lib64",
      "/usr/local/cuda/targets/x86_64-linux/lib",
      "/usr/lib/x86_64-linux-gnu",
      "/usr/local/nvidia/lib64",
      "/usr/lib64",
      "/usr/lib/wsl/lib");

  /** An opened library: its lookup and what was opened (a path or a bare name for the loader). */
  record Library(String fileName, String openedAs, SymbolLookup lookup) {

    /** A downcall handle for {@code symbol}; a missing symbol is a one-line error naming the library. */
    MethodHandle function(String symbol, FunctionDescriptor descriptor) {
      MemorySegment address = lookup.find(symbol).orElseThrow(() -> new CudaException(
          openedAs + " has no symbol " + symbol + " (the library is older than medtune needs)"));
      return LINKER.downcallHandle(address, descriptor);
    }
  }

  private NativeLibraries() {}

  /** The folders searched, in order. */
  static List<Path> searchDirs() {
    Set<String> dirs = new LinkedHashSet<>();
    for (String env : new String[] {System.getenv("MEDTUNE_CUDA_LIB_DIR"), System.getenv("LD_LIBRARY_PATH")}) {
      if (env != null) {
        for (String d : env.split(":")) {
          if (!d.isBlank()) {
            dirs.add(d.trim());
          }
        }
      }
    }
    dirs.addAll(USUAL_DIRS);
    List<Path> out = new ArrayList<>();
    for (String d : dirs) {
      out.add(Path.of(d));
    }
    return out;
  }

  /**
   * Opens {@code fileName} (e.g. {@code libnvrtc.so.13}); when no folder holds that exact name,
   * the highest {@code globPrefix*} file found (e.g. {@code libnvrtc.so.}) is used instead, so a
   * toolkit of another major version still loads and reports its own version.
   */
  static Library open(String fileName, String globPrefix, String whatFor) {
    List<Path> dirs = searchDirs();
    for (Path dir : dirs) {
      Path p = dir.resolve(fileName);
      if (Files.isRegularFile(p)) {
        return new Library(fileName, p.toString(), SymbolLookup.libraryLookup(p, Arena.global()));
      }
    }
    if (globPrefix != null) {
      for (Path dir : dirs) {
        Path best = highest(dir, globPrefix);
        if (best != null) {
          return new Library(fileName, best.toString(), SymbolLookup.libraryLookup(best, Arena.global()));
        }
      }
    }
    try {
      // the loader's own search: ld.so.cache, RUNPATH; where the driver is installed by the system
      return new Library(fileName, fileName, SymbolLookup.libraryLookup(fileName, Arena.global()));
    } catch (IllegalArgumentException e) {
      throw new CudaException(fileName + " (" + whatFor + ") not found in " + dirs
          + " nor by the dynamic loader; install it or set MEDTUNE_CUDA_LIB_DIR to its folder");
    }
  }

  static Path highest(Path dir, String prefix) {
    if (!Files.isDirectory(dir)) {
      return null;
    }
    List<Path> found = new ArrayList<>();
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, prefix.replace("*", "") + "*")) {
      for (Path p : ds) {
        String rest = p.getFileName().toString().substring(prefix.length());
        if (!rest.isEmpty() && Character.isDigit(rest.charAt(0)) && Files.isRegularFile(p)) {
          found.add(p);
        }
      }
    } catch (IOException e) {
      return null;
    }
    found.sort(Comparator.comparing(NativeLibraries::versionKey));
    return found.isEmpty() ? null : found.getLast();
  }

  /** "libnvrtc.so.13.0.88" -> "00013.00000.00088", so that versions sort numerically. */
  private static String versionKey(Path p) {
    String name = p.getFileName().toString();
    int so = name.indexOf(".so.");
    StringBuilder key = new StringBuilder();
    for (String part : name.substring(so + 4).split("\\.")) {
      key.append(String.format("%05d.", part.chars().allMatch(Character::isDigit) && !part.isEmpty()
          ? Integer.parseInt(part) : 0));
    }
    return key.toString();
  }
}
