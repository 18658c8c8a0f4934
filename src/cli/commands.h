/* Every `r1c <command>` entry point. Each returns the process exit code
 * (0 ok, 1 runtime error, 2 usage error) and prints its own errors. */
#ifndef R1C_CLI_COMMANDS_H
#define R1C_CLI_COMMANDS_H

typedef struct Command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
} Command;

/* one declaration per command, alphabetical */
int cmd_chat_template(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_grpo(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_launch(int argc, char **argv);
int cmd_pipeline(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_reward(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_sft(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_tokenizer_train(int argc, char **argv);

#endif
