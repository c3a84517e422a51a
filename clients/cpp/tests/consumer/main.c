/* The same with the C API alone. */
#include <stdio.h>

#include <messagingmesh/messaging_mesh.h>

int main(void) {
    mm_message *message = mm_message_new();
    char text[64];
    size_t length = 0;
    if (mm_message_add_f64(message, "px", MM_NUL_TERMINATED, 123.4) != MM_STATUS_OK ||
        mm_message_to_string(message, text, sizeof text, &length) != MM_STATUS_OK) {
        fprintf(stderr, "%s\n", mm_last_error());
        return 1;
    }
    printf("C %s %s\n", mm_version(), text);
    mm_message_free(message);
    return 0;
}
