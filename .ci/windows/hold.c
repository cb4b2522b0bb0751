/* hold.exe PATH: holds PATH open as a running program does (SadTalker reading a
 * checkpoint, an editor, a virus scan) until its standard input closes, so the Windows
 * tests can install over a file in use. It shares reading and writing but not deletion,
 * as the C runtime's fopen and Python's open() do: Windows then refuses to rename over
 * the file or delete it (ERROR_ACCESS_DENIED or ERROR_SHARING_VIOLATION) while it is held.
 * It prints "held" once the file is open, so a test waits for that line, not for a time. */
#include <windows.h>
#include <stdio.h>

int wmain(int argc, wchar_t **argv) {
    if (argc != 2) {
        fputs("usage: hold.exe PATH\n", stderr);
        return 2;
    }
    HANDLE file = CreateFileW(argv[1], GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                              OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    if (file == INVALID_HANDLE_VALUE) {
        fprintf(stderr, "hold.exe: cannot open the file (error %lu)\n", GetLastError());
        return 1;
    }
    puts("held");
    fflush(stdout);
    char buffer[64];
    DWORD got;
    HANDLE input = GetStdHandle(STD_INPUT_HANDLE);
    while (ReadFile(input, buffer, sizeof buffer, &got, NULL) && got > 0) {
    }
    CloseHandle(file);
    return 0;
}
