package medallion;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.Set;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * Hadoop's checksummed local file system, setting a file's permissions through Java instead of a process.
 *
 * <p>Without Hadoop's native library, RawLocalFileSystem.setPermission runs `chmod` as a child process, and
 * Hadoop sets the permissions of every file it creates (each data file, its checksum, each Delta commit): on
 * one machine a year's build started tens of thousands of processes from the driver's JVM. This sets the same
 * permission bits with java.nio, which is what the native library would do.
 */
public class NioLocalFileSystem extends LocalFileSystem {
  public NioLocalFileSystem() {
    super(new NioRawLocalFileSystem());
  }

  /** The raw local file system under the checksums, with permissions set in-process. */
  public static class NioRawLocalFileSystem extends RawLocalFileSystem {
    // PosixFilePermission's constants run from the owner's read (the mode's bit 8) to the others' execute (bit 0).
    private static final PosixFilePermission[] BY_BIT_FROM_TOP = PosixFilePermission.values();

    @Override
    public void setPermission(Path path, FsPermission permission) throws IOException {
      short mode = permission.toShort();
      Set<PosixFilePermission> granted = EnumSet.noneOf(PosixFilePermission.class);
      for (int bit = 0; bit < 9; bit++) {
        if ((mode & (1 << (8 - bit))) != 0) {
          granted.add(BY_BIT_FROM_TOP[bit]);
        }
      }
      Files.setPosixFilePermissions(pathToFile(path).toPath(), granted);
    }
  }
}
