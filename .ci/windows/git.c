/* git.exe rev-parse (--show-toplevel | --git-path hooks): the two questions `models hook
 * install` asks git, answered as Git for Windows answers them, for the Windows tests under
 * wine, which has no Git for Windows. The top is the nearest folder above the current one
 * that holds `.git`, printed with forward slashes (`Z:/tmp/repo`); the hooks are
 * `.git/hooks`. Anything else is refused: the tests must not believe it is git. */
#include <windows.h>
#include <stdio.h>
#include <wchar.h>

int wmain(int argc, wchar_t **argv) {
    if (argc != 3 && !(argc == 4 && wcscmp(argv[2], L"--git-path") == 0)) {
        fputs("git.exe (test shim): only `rev-parse --show-toplevel` and `rev-parse --git-path hooks`\n", stderr);
        return 129;
    }
    if (wcscmp(argv[1], L"rev-parse") != 0) {
        return 129;
    }
    if (argc == 4) {
        if (wcscmp(argv[3], L"hooks") != 0) {
            return 129;
        }
        puts(".git/hooks");
        return 0;
    }
    if (wcscmp(argv[2], L"--show-toplevel") != 0) {
        return 129;
    }
    wchar_t dir[MAX_PATH];
    if (!GetCurrentDirectoryW(MAX_PATH, dir)) {
        return 128;
    }
    for (;;) {
        wchar_t probe[MAX_PATH + 8];
        swprintf(probe, MAX_PATH + 8, L"%ls\\.git", dir);
        DWORD attributes = GetFileAttributesW(probe);
        if (attributes != INVALID_FILE_ATTRIBUTES && (attributes & FILE_ATTRIBUTE_DIRECTORY)) {
            for (wchar_t *c = dir; *c; c++) {
                if (*c == L'\\') {
                    *c = L'/';
                }
            }
            wprintf(L"%ls\n", dir);
            return 0;
        }
        wchar_t *slash = wcsrchr(dir, L'\\');
        if (!slash || slash == wcschr(dir, L'\\')) {
            fputs("fatal: not a git repository (or any of the parent directories): .git\n", stderr);
            return 128;
        }
        *slash = 0;
    }
}
