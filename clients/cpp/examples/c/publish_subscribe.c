/*
 * The C API in one small program: connect, subscribe, publish three messages, receive them in
 * the queue dispatch mode, then send a request nobody answers.
 *
 *   c_publish_subscribe [HOST[:PORT]] [SERVICE]      (defaults 127.0.0.1:5050, DEFAULT)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <messagingmesh/messaging_mesh.h>

/* Prints the failure and exits (a real program would recover). */
static void check(mm_status status, const char *what) {
    if (status != MM_STATUS_OK) {
        fprintf(stderr, "%s failed: %s: %s\n", what, mm_status_name(status), mm_last_error());
        exit(1);
    }
}

/* Runs for every delivered message; it owns `received` and frees it. */
static void on_message(void *user_data, mm_received *received, const mm_delivery *delivery) {
    int *count = user_data;
    const mm_message *message;
    int32_t seq = 0;
    char text[256];
    size_t text_len;
    check(mm_received_message(received, &message), "mm_received_message");
    check(mm_message_get_i32(message, "seq", MM_NUL_TERMINATED, &seq), "mm_message_get_i32");
    if (mm_message_to_string(message, text, sizeof text, &text_len) != MM_STATUS_OK) {
        strcpy(text, "(too long to show)");
    }
    printf("received %.*s seq=%d %s\n", (int)delivery->subject_len, delivery->subject, (int)seq, text);
    ++*count;
    mm_received_free(received);
}

static const char usage[] =
    "usage: c_publish_subscribe [HOST[:PORT]] [SERVICE]\n"
    "Connects, subscribes to C.EXAMPLE.>, publishes three messages, receives them, then sends a\n"
    "request nobody answers. Defaults: 127.0.0.1:5050, service DEFAULT.\n";

int main(int argc, char **argv) {
    const char *address;
    const char *service;
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc > 3 || (argc > 1 && argv[1][0] == '-') || (argc > 2 && argv[2][0] == '-')) {
        fputs(usage, stderr);
        return 2;
    }
    address = argc > 1 ? argv[1] : "127.0.0.1:5050";
    service = argc > 2 ? argv[2] : "DEFAULT";
    mm_connection_params *params;
    mm_connection *connection;
    mm_subscription *subscription;
    mm_message *message;
    mm_received *reply = NULL;
    mm_status status;
    int received = 0;
    int seq;

    check(mm_connection_params_new(address, MM_NUL_TERMINATED, service, MM_NUL_TERMINATED, &params),
          "mm_connection_params_new");
    check(mm_connection_params_set_dispatch_mode(params, MM_DISPATCH_MODE_QUEUE), "set_dispatch_mode");
    check(mm_connect(params, &connection), "mm_connect");
    mm_connection_params_free(params);
    printf("connected to %s (library %s)\n", address, mm_version());

    /* `received` outlives the subscription, so there is nothing to free: NULL free function. */
    check(mm_connection_subscribe(connection, "C.EXAMPLE.>", MM_NUL_TERMINATED, on_message, &received, NULL,
                                  &subscription),
          "mm_connection_subscribe");
    check(mm_connection_flush(connection, 10000, false), "mm_connection_flush");

    message = mm_message_new();
    for (seq = 1; seq <= 3; ++seq) {
        check(mm_message_clear(message), "mm_message_clear");
        check(mm_message_add_i32(message, "seq", MM_NUL_TERMINATED, seq), "mm_message_add_i32");
        check(mm_message_add_string(message, "sym", MM_NUL_TERMINATED, "IBM", MM_NUL_TERMINATED), "add_string");
        check(mm_message_add_f64(message, "px", MM_NUL_TERMINATED, 100.0 + seq), "mm_message_add_f64");
        check(mm_connection_send(connection, "C.EXAMPLE.PRICES", MM_NUL_TERMINATED, NULL, 0, message),
              "mm_connection_send");
    }
    while (received < 3) {
        check(mm_connection_process_message_queue(connection, 10000, 0, NULL, NULL), "process_message_queue");
    }

    status = mm_connection_request(connection, "C.NOBODY.HOME", MM_NUL_TERMINATED, message, 2000, &reply);
    if (status == MM_STATUS_NO_RESPONDERS || status == MM_STATUS_TIMEOUT) {
        printf("request: %s (%s)\n", mm_status_name(status), mm_last_error());
    } else {
        check(status, "mm_connection_request");
        mm_received_free(reply);
    }

    mm_message_free(message);
    mm_subscription_free(subscription);
    mm_connection_free(connection);
    printf("done\n");
    return 0;
}
